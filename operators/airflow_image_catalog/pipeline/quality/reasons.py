"""Failed checks in a reviewer's words: what is wrong, where, how much.

Each expectation of a quality profile may carry a ``reason`` template, formatted with the
image's metrics row (``{bg_off_share:.1%}``, ``{bg_where}``); a value the row does not have
prints as "?" instead of failing, and an expectation without a template gets a sentence from
its ``why``, its bounds and the observed value. The category (background, overlay,
completeness, identity, detail, text, framing, file, integrity) lets the report and the review
queue group reasons and lets the corpus benchmark check that a defect got the right one.
"""

from __future__ import annotations

import string
from typing import Any

CATEGORIES = ("background", "overlay", "completeness", "identity", "detail", "text", "framing", "file", "integrity")


class _Row(dict):
    def __missing__(self, key: str) -> Any:
        return None


class _Formatter(string.Formatter):
    """``str.format`` that prints a missing or None field as '?' whatever its format spec."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "?"
        try:
            return super().format_field(value, format_spec)
        except (TypeError, ValueError):
            return str(value)

    def get_value(self, key, args, kwargs):  # noqa: ANN001 - string.Formatter's signature
        return kwargs.get(key) if isinstance(key, str) else super().get_value(key, args, kwargs)


_FORMATTER = _Formatter()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def sentence(template: str, row: dict[str, Any]) -> str:
    """The template filled from the row; a broken template falls back to the template text itself."""
    try:
        text = _FORMATTER.vformat(template, (), _Row({k: _plain(v) for k, v in row.items()}))
    except (KeyError, IndexError, AttributeError, ValueError):
        text = template
    return " ".join(text.split())


def default_sentence(why: str, label: str, observed: Any) -> str:
    shown = f"{observed:.3g}" if isinstance(observed, float) else str(observed)
    return f"{why[:1].upper() + why[1:] if why else label}: observed {shown} (expected {label})"


def reason_text(failure: dict[str, Any]) -> str:
    """A stored failure's sentence; records written before reasons existed get one from label and value."""
    return failure.get("reason") or default_sentence(failure.get("why", ""), str(failure.get("label")),
                                                     failure.get("observed"))


def reason_for(expectation: Any, row: dict[str, Any]) -> str:
    """The sentence for one failed expectation (a ``profiles.Expectation``) on one metrics row."""
    if getattr(expectation, "reason", ""):
        return sentence(expectation.reason, row)
    return default_sentence(expectation.why, expectation.label, _plain(row.get(expectation.metric)))
