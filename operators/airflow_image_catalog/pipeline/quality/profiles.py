"""Quality profiles: named sets of expectations on the per-image metrics, kept as YAML config.

A profile lists expectations such as ``{metric: product_fill, min: 0.845}`` or
``{metric: format, in: [jpeg, png]}``; ``include`` pulls in other profiles (the
marketplace profiles all include ``edit_integrity``), and ``intents`` limits an
expectation to the edit intents it makes sense for. Each becomes one Great
Expectations expectation on the chunk's metrics DataFrame. Users add their own
profile file and pass its path instead of a shipped name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_image_catalog.exceptions import CatalogError

SHIPPED_DIR = Path(__file__).parent / "profiles"
INTENTS = ("reframe", "masked", "region", "global")
_BOUNDS = ("min", "max")
_FIELDS = ("metric", "min", "max", "in", "intents", "why", "strict", "category", "reason")


class ProfileError(CatalogError, ValueError):
    """A quality profile is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Expectation:
    metric: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    intents: tuple[str, ...] = INTENTS
    why: str = ""
    strict: bool = False  # min/max exclusive
    category: str = "integrity"  # what kind of fault a failure is (``reasons.CATEGORIES``)
    reason: str = ""  # the reviewer's sentence, formatted with the metrics row (``reasons.sentence``)

    @property
    def label(self) -> str:
        if self.allowed is not None:
            return f"{self.metric} in {list(self.allowed)}"
        low = "" if self.min is None else f"{self.min} {'<' if self.strict else '<='} "
        high = "" if self.max is None else f" {'<' if self.strict else '<='} {self.max}"
        return f"{low}{self.metric}{high}"

    def check(self, value: Any) -> bool | None:
        """The same verdict GX gives, for one value: None where the metric does not apply."""
        if value is None or (isinstance(value, float) and value != value):  # missing or NaN
            return None
        if self.allowed is not None:
            return value in self.allowed
        if self.min is not None and (value <= self.min if self.strict else value < self.min):
            return False
        return not (self.max is not None and (value >= self.max if self.strict else value > self.max))

    def to_gx(self):
        """The Great Expectations expectation (GX is imported here, never at parse time)."""
        import great_expectations as gx

        meta = {"label": self.label, "why": self.why, "category": self.category}
        if self.allowed is not None:
            return gx.expectations.ExpectColumnValuesToBeInSet(
                column=self.metric, value_set=list(self.allowed), meta=meta
            )
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=self.metric,
            min_value=self.min,
            max_value=self.max,
            strict_min=self.strict,
            strict_max=self.strict,
            meta=meta,
        )


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    expectations: tuple[Expectation, ...] = field(default_factory=tuple)
    origin: str = ""
    canvas: tuple[int, int, int] | None = None  # a reframed edit's canvas colour, when the destination fixes it

    def for_intent(self, intent: str) -> list[Expectation]:
        return [e for e in self.expectations if intent in e.intents]

    def check(self, row: dict[str, Any]) -> dict[str, bool | None]:
        """Per-metric verdict for one metrics row without GX (True pass, False fail, None n/a)."""
        verdicts: dict[str, bool | None] = {}
        for expectation in self.for_intent(str(row.get("intent"))):
            verdict = expectation.check(row.get(expectation.metric))
            previous = verdicts.get(expectation.metric)
            verdicts[expectation.metric] = verdict if previous is None else previous and verdict is not False
        return verdicts


def _fail(origin: str, where: str, message: str) -> None:
    raise ProfileError(f"{origin}: {where}: {message}")


def _parse_expectation(origin: str, where: str, data: Any) -> Expectation:
    if not isinstance(data, dict):
        _fail(origin, where, f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        _fail(origin, f"{where}.{unknown[0]}", f"unknown field (allowed: {', '.join(_FIELDS)})")
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric:
        _fail(origin, f"{where}.metric", "required: the metric column to check")
    has_bounds = any(k in data for k in _BOUNDS)
    if has_bounds == ("in" in data):
        _fail(origin, where, "give either min/max or in, not both or neither")
    for bound in _BOUNDS:
        value = data.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            _fail(origin, f"{where}.{bound}", f"must be a number, got {value!r}")
    if "in" in data and (not isinstance(data["in"], list) or not data["in"]):
        _fail(origin, f"{where}.in", "must be a non-empty list")
    from airflow_image_catalog.pipeline.quality.reasons import CATEGORIES

    category = data.get("category", "integrity")
    if category not in CATEGORIES:
        _fail(origin, f"{where}.category", f"must be one of {', '.join(CATEGORIES)}, got {category!r}")
    if not isinstance(data.get("reason", ""), str):
        _fail(origin, f"{where}.reason", "must be a string (a sentence with {metric} fields)")
    intents = data.get("intents", list(INTENTS))
    if not isinstance(intents, list) or not set(intents) <= set(INTENTS) or not intents:
        _fail(origin, f"{where}.intents", f"must be a list drawn from {', '.join(INTENTS)}, got {intents!r}")
    return Expectation(
        metric=metric,
        min=data.get("min"),
        max=data.get("max"),
        allowed=tuple(data["in"]) if "in" in data else None,
        intents=tuple(intents),
        why=str(data.get("why", "")),
        strict=bool(data.get("strict", False)),
        category=category,
        reason=data.get("reason", ""),
    )


def parse_profile(data: Any, *, origin: str = "<profile>", _seen: tuple[str, ...] = ()) -> Profile:
    label = origin.rsplit("/", 1)[-1]
    if not isinstance(data, dict):
        _fail(label, "<top>", f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - {"version", "name", "description", "include", "canvas", "expectations"})
    if unknown:
        _fail(label, unknown[0], "unknown field (allowed: version, name, description, include, canvas, expectations)")
    if data.get("version", 1) != 1:
        _fail(label, "version", f"unsupported profile version {data.get('version')!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        _fail(label, "name", "required")
    expectations: list[Expectation] = []
    canvas = None
    for included in data.get("include") or []:
        if included in _seen:
            _fail(label, "include", f"include cycle through {included!r}")
        parent = load_profile(included, _seen=(*_seen, name))
        expectations.extend(parent.expectations)
        canvas = parent.canvas or canvas
    if "canvas" in data:
        canvas = _parse_canvas(label, data["canvas"])
    items = data.get("expectations") or []
    if not isinstance(items, list):
        _fail(label, "expectations", "must be a list")
    expectations.extend(_parse_expectation(label, f"expectations[{i}]", e) for i, e in enumerate(items))
    if not expectations:
        _fail(label, "expectations", "a profile needs at least one expectation (its own or included)")
    return Profile(name=name, description=str(data.get("description", "")), expectations=tuple(expectations),
                   origin=origin, canvas=canvas)


def _parse_canvas(label: str, value: Any) -> tuple[int, int, int]:
    """``canvas: "#FFFFFF"``: the colour every pixel outside the product must have."""
    from airflow_image_catalog.imaging.engine._common import hex_to_rgb

    try:
        return hex_to_rgb(str(value))
    except (ValueError, TypeError) as exc:
        _fail(label, "canvas", f"must be a colour like '#FFFFFF', got {value!r} ({exc})")
        raise  # unreachable: _fail raises


def shipped_profiles() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}


def load_profile(ref: str, *, _seen: tuple[str, ...] = ()) -> Profile:
    """A shipped profile by name, or a profile file by path or URI."""
    from airflow_image_catalog.config.documents import load_document

    data, uri = load_document(ref, shipped_profiles(), kind="quality profile", error=ProfileError)
    return parse_profile(data, origin=uri, _seen=_seen)
