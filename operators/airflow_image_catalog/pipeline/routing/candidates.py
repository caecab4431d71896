"""Routing candidates: the settings a recipe may be edited with, in escalation order.

A :class:`Candidate` is a name and the overrides applied over the run's connection exactly as the
cost check's downgrade applies its own (``hooks.image_edit.with_overrides``: ``backend`` names
another route, every other key replaces the connection extra of that name). A candidate list is a
YAML file ordered weakest/cheapest first, strongest last: the router escalates an image that fails
the gate to the next candidate in this order. Errors name the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_image_catalog.exceptions import CatalogError

LISTS = Path(__file__).with_name("lists")
#: candidate lists shipped with the package, by name
SHIPPED = {path.stem: path for path in sorted(LISTS.glob("*.yaml"))}
#: override keys a candidate may set: the backend route and the backends' own extras that change
#: what is edited and what it costs (``size``: the request size; ``input_fidelity``: how the input
#: is read; ``n``: images per request). ``backend: openai_batch`` is the Batch route.
OVERRIDE_KEYS = ("backend", "model", "quality", "size", "input_fidelity", "background", "n")
QUALITIES = ("low", "medium", "high", "auto")
_TOP = ("version", "name", "description", "note", "candidates")
_CANDIDATE = ("name", "overrides", "note")


class CandidateError(CatalogError, ValueError):
    """A candidate list is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Candidate:
    """One way to edit: a unique name and the connection overrides it applies.

    :param overrides: applied with ``with_overrides`` over the run's connection (never a key).
    :param note: what the candidate is, for reports (e.g. "emulated tier: 30 % defects").
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def backend(self) -> str | None:
        """The backend route it names (``None``: the connection's own)."""
        value = self.overrides.get("backend")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "overrides": dict(self.overrides), "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(str(data["name"]), dict(data.get("overrides") or {}), str(data.get("note") or ""))


@dataclass(frozen=True)
class CandidateList:
    """A validated candidate list: ``candidates`` weakest/cheapest first (the escalation order)."""

    name: str
    candidates: tuple[Candidate, ...]
    description: str = ""
    note: str = ""
    origin: str = ""

    def __iter__(self):
        return iter(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.candidates)

    def get(self, name: str) -> Candidate:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        raise CandidateError(f"{_label(self.origin)}: no candidate {name!r} (known: {', '.join(self.names)})")

    def stronger(self, name: str) -> Candidate | None:
        """The next candidate in escalation order after ``name`` (``None``: it is the strongest)."""
        index = self.names.index(self.get(name).name)
        return self.candidates[index + 1] if index + 1 < len(self.candidates) else None

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "name": self.name, "description": self.description, "note": self.note,
                "candidates": [c.to_dict() for c in self.candidates]}


def _label(origin: str) -> str:
    return origin.rsplit("/", 1)[-1] or "<candidates>"


def _fail(origin: str, where: str, message: str) -> None:
    raise CandidateError(f"{_label(origin)}: {where}: {message}")


def _check_override(origin: str, where: str, key: str, value: Any) -> None:
    from airflow_image_catalog.pipeline.costing.pricing import PricingError, provider_for

    if key == "backend":
        try:
            provider_for(str(value))  # the backends the price table can price: every edit backend
        except PricingError as exc:
            _fail(origin, where, str(exc))
    elif key == "quality" and value not in QUALITIES:
        _fail(origin, where, f"must be one of {', '.join(QUALITIES)}, got {value!r}")
    elif key == "n" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10):
        _fail(origin, where, f"must be an integer 1-10, got {value!r}")
    elif key == "size" and not (value == "auto" or _is_size(value)):
        _fail(origin, where, f"must be WIDTHxHEIGHT or auto, got {value!r}")
    elif key != "n" and (not isinstance(value, str) or not value.strip()):
        _fail(origin, where, f"must be a non-empty string, got {value!r}")


def _is_size(value: Any) -> bool:
    parts = str(value).lower().split("x")
    return isinstance(value, str) and len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts)


def parse_candidates(data: Any, *, origin: str = "<candidates>") -> CandidateList:
    """Validate a candidate document (the parsed YAML); errors name ``origin``'s file and the field."""
    if not isinstance(data, dict):
        _fail(origin, "<top>", f"must be a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in set(data) - set(_TOP))
    if unknown:
        _fail(origin, unknown[0], f"unknown field (allowed: {', '.join(_TOP)})")
    if data.get("version") != 1:
        _fail(origin, "version", f"unsupported candidate list version {data.get('version')!r} (expected 1)")
    items = data.get("candidates")
    if not isinstance(items, list) or not items:
        _fail(origin, "candidates", "required: a list of candidates, weakest/cheapest first")
    candidates, seen = [], set()
    for index, item in enumerate(items):
        where = f"candidates[{index}]"
        if not isinstance(item, dict):
            _fail(origin, where, f"must be a mapping, got {type(item).__name__}")
        unknown = sorted(str(k) for k in set(item) - set(_CANDIDATE))
        if unknown:
            _fail(origin, f"{where}.{unknown[0]}", f"unknown field (allowed: {', '.join(_CANDIDATE)})")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            _fail(origin, f"{where}.name", f"required: a non-empty name, got {name!r}")
        if name in seen:
            _fail(origin, f"{where}.name", f"duplicate candidate name {name!r}")
        seen.add(name)
        overrides = item.get("overrides")
        if not isinstance(overrides, dict) or not overrides:
            _fail(origin, f"{where}.overrides", "required: a mapping of connection settings (backend, model, ...)")
        for key, value in overrides.items():
            if key not in OVERRIDE_KEYS:
                _fail(origin, f"{where}.overrides.{key}", f"unknown setting (allowed: {', '.join(OVERRIDE_KEYS)})")
            _check_override(origin, f"{where}.overrides.{key}", key, value)
        note = item.get("note", "")
        if not isinstance(note, str):
            _fail(origin, f"{where}.note", f"must be text, got {note!r}")
        candidates.append(Candidate(name.strip(), dict(overrides), note))
    for key in ("name", "description", "note"):
        if key in data and not isinstance(data[key], str):
            _fail(origin, key, f"must be text, got {data[key]!r}")
    name = data.get("name") or _label(origin).rsplit(".", 1)[0]
    return CandidateList(str(name), tuple(candidates), str(data.get("description") or ""),
                         str(data.get("note") or ""), origin)


def load_candidates(ref: str) -> CandidateList:
    """A shipped candidate list by name (``emulated_tiers``), or a YAML/JSON file by path or URI.

    :raises CandidateError: naming the file and the field.
    """
    from airflow_image_catalog.config.documents import load_document

    if not isinstance(ref, str) or not ref.strip():
        raise CandidateError(f"candidates: required: a shipped list ({', '.join(SHIPPED)}) or a file, got {ref!r}")
    data, uri = load_document(ref.strip(), SHIPPED, kind="candidate list", error=CandidateError)
    return parse_candidates(data, origin=uri)
