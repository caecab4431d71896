"""Reading operator arguments that arrive as rendered templates (strings) at runtime."""

from __future__ import annotations

from typing import Any

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "", "none")


def as_bool(value: Any, name: str = "value") -> bool:
    """A bool from a bool or a rendered template (``"True"``, ``"false"``, ``"1"``, ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(f"{name}: expected a boolean, got {value!r}")
