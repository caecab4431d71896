"""Shared loading of the project's YAML config documents (recipes, quality profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_image_catalog.storage import StorageError, normalize_uri, read_bytes


def load_document(ref: str, shipped: dict[str, Path], *, kind: str, error: type[Exception]) -> tuple[Any, str]:
    """Load a shipped document by name, or one by path or URI; return (parsed YAML, its URI).

    :raises error: naming what was looked for when the reference cannot be read or parsed.
    """
    import yaml


    uri = shipped[ref].as_uri() if ref in shipped else normalize_uri(ref)
    try:
        raw = read_bytes(uri)
    except StorageError as exc:
        known = ", ".join(shipped)
        raise error(f"{kind} {ref!r} is neither a shipped {kind} ({known}) nor a readable file: {exc}") from exc
    try:
        return yaml.safe_load(raw), uri
    except yaml.YAMLError as exc:
        raise error(f"{uri.rsplit('/', 1)[-1]}: not valid YAML/JSON: {exc}") from exc
