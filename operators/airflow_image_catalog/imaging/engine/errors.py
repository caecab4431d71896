"""Exceptions raised by the local edit engine.

All derive from ``ValueError`` so callers that only know "bad input" can catch
one thing, while operators can tell a bad upload (ImageDecodeError, final, not
retried) from a bad recipe (OpParamError, names the offending field).
"""

from __future__ import annotations

from typing import Any

from airflow_image_catalog.exceptions import CatalogError


class EngineError(CatalogError, ValueError):
    """Base class for every error the engine raises on purpose."""


class ImageDecodeError(EngineError):
    """The input bytes are not a usable image (empty, corrupt, too large, ...)."""


class OpParamError(EngineError):
    """An op, parameter or input does not satisfy the op's contract.

    ``field`` names the offending parameter (or "op", "mask", "references",
    "image") so a recipe validator can point at the exact key.
    """

    def __init__(self, field: str, message: str, *, op: str | None = None, value: Any = None) -> None:
        self.field = field
        self.op = op
        self.value = value
        prefix = f"{op}: " if op else ""
        super().__init__(f"{prefix}{message}")


class NoSubjectError(EngineError):
    """The photo has no plain backdrop to separate a product from (a scene, a close-up).

    Final for the local engine: publishing a guessed cut-out would be worse than
    failing the image with this reason.
    """
