"""The versioned routing decision: which candidate a recipe's images go to, and the data behind it.

A canary writes one; ``catalog_refresh`` (and the router) read the newest. Each version is an
immutable object under the workspace (``WorkspaceLayout.routing_decision``: written once, never
replaced, so a run's record of the decision it used always resolves to what it said) and the
recipe's ``latest.json`` pointer names the newest version. A reader that finds the pointer reads
the version it names; a pointer left behind by a crash between the two writes names the previous
version, which is still whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.routing.candidates import Candidate
from airflow_image_catalog.pipeline.routing.figures import CandidateFigures

KIND = "routing_decision"
SCHEMA = 1


class DecisionError(CatalogError, ValueError):
    """A routing decision is malformed, or a version would be overwritten; the message says which."""


@dataclass(frozen=True)
class RoutingDecision:
    """One routing decision for one recipe.

    :param recipe: the recipe's name (the key under ``routing/``); ``recipe_fingerprint`` its content.
    :param target_pass_rate: the pass rate the chosen candidate's lower bound had to meet.
    :param candidates: the candidate list evaluated, weakest/cheapest first (the escalation order).
    :param figures: one row per candidate (pass rate, Wilson bounds, cost per passing image, ...).
    :param sample: the sample's image ids (``image_ids``), their strata and the source it came from.
    :param chosen: the chosen candidate's name; ``None`` when none met the target (``reason`` says why).
    :param run: the DAG run that made it (``dag_id``, ``run_id``) and its run key.
    :param version: set when written (``write_decision``): sortable time, then a content hash.
    """

    recipe: str
    target_pass_rate: float
    candidates: tuple[Candidate, ...]
    figures: tuple[CandidateFigures, ...]
    sample: dict[str, Any]
    chosen: str | None
    reason: str = ""
    created_at: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    recipe_fingerprint: str = ""
    candidate_list: str = ""
    confidence: float = 0.95
    version: str = ""

    def __post_init__(self) -> None:
        if not self.recipe:
            raise DecisionError("routing decision: recipe: required")
        if not 0 <= self.target_pass_rate <= 1:
            raise DecisionError(f"routing decision: target_pass_rate: must be 0..1, got {self.target_pass_rate!r}")
        names = [c.name for c in self.candidates]
        if self.chosen is not None and self.chosen not in names:
            raise DecisionError(f"routing decision: chosen: {self.chosen!r} is not a candidate ({', '.join(names)})")
        unknown = [f.candidate for f in self.figures if f.candidate not in names]
        if unknown:
            raise DecisionError(f"routing decision: figures: {unknown[0]!r} is not a candidate")

    @property
    def chosen_candidate(self) -> Candidate | None:
        return next((c for c in self.candidates if c.name == self.chosen), None)

    @property
    def sample_ids(self) -> list[str]:
        return list(self.sample.get("image_ids") or [])

    def figures_for(self, name: str) -> CandidateFigures | None:
        return next((f for f in self.figures if f.candidate == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "schema": SCHEMA, "version": self.version, "recipe": self.recipe,
                "recipe_fingerprint": self.recipe_fingerprint, "target_pass_rate": self.target_pass_rate,
                "confidence": self.confidence, "candidate_list": self.candidate_list,
                "candidates": [c.to_dict() for c in self.candidates], "figures": [f.to_dict() for f in self.figures],
                "sample": self.sample, "chosen": self.chosen, "reason": self.reason, "created_at": self.created_at,
                "run": self.run}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "<decision>") -> RoutingDecision:
        if not isinstance(data, Mapping) or data.get("kind") != KIND:
            raise DecisionError(f"{origin}: kind: not a routing decision")
        if data.get("schema") != SCHEMA:
            raise DecisionError(f"{origin}: schema: unsupported {data.get('schema')!r} (expected {SCHEMA})")
        try:
            return cls(recipe=str(data["recipe"]), target_pass_rate=float(data["target_pass_rate"]),
                       candidates=tuple(Candidate.from_dict(c) for c in data["candidates"]),
                       figures=tuple(CandidateFigures.from_dict(f) for f in data["figures"]),
                       sample=dict(data.get("sample") or {}), chosen=data.get("chosen"),
                       reason=str(data.get("reason") or ""), created_at=str(data.get("created_at") or ""),
                       run=dict(data.get("run") or {}), recipe_fingerprint=str(data.get("recipe_fingerprint") or ""),
                       candidate_list=str(data.get("candidate_list") or ""),
                       confidence=float(data.get("confidence", 0.95)), version=str(data.get("version") or ""))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DecisionError):
                raise
            raise DecisionError(f"{origin}: malformed routing decision: {exc!r}") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def new_version(decision: RoutingDecision) -> str:
    """A version id that sorts by time and names the content: ``20261202T143501123456Z-<sha12>``."""
    stamp = dt.datetime.fromisoformat(decision.created_at).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    body = json.dumps(replace(decision, version="").to_dict(), sort_keys=True, default=str).encode()
    return f"{stamp}-{hashlib.sha256(body).hexdigest()[:12]}"


def write_decision(workspace: str, decision: RoutingDecision) -> RoutingDecision:
    """Write ``decision`` as a new immutable version, then point the recipe's ``latest`` at it.

    :returns: the decision as written (``created_at`` and ``version`` set).
    :raises DecisionError: when that version already exists (versions are never overwritten).
    """
    from airflow_image_catalog.storage import exists, write_json
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    layout = WorkspaceLayout(workspace)
    decision = replace(decision, created_at=decision.created_at or _now())
    decision = replace(decision, version=decision.version or new_version(decision))
    uri = layout.routing_decision(decision.recipe, decision.version)
    if exists(uri):
        raise DecisionError(f"routing decision {decision.recipe} version {decision.version} exists: "
                            "versions are immutable")
    write_json(uri, decision.to_dict())
    write_json(layout.routing_latest(decision.recipe), {"kind": "routing_latest", "recipe": decision.recipe,
                                                        "version": decision.version, "uri": uri,
                                                        "created_at": decision.created_at})
    return decision


def read_decision(uri: str) -> RoutingDecision:
    """One decision version by its URI."""
    from airflow_image_catalog.storage import read_json

    return RoutingDecision.from_dict(read_json(uri), origin=uri)


def decision_uri(workspace: str, recipe: str, version: str | None = None) -> str | None:
    """The URI of ``version`` (or of the newest, by the ``latest`` pointer; ``None`` when there is none)."""
    from airflow_image_catalog.storage import read_json_if_exists
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    layout = WorkspaceLayout(workspace)
    if version:
        return layout.routing_decision(recipe, version)
    pointer = read_json_if_exists(layout.routing_latest(recipe))
    return layout.routing_decision(recipe, str(pointer["version"])) if pointer else None


def latest_decision(workspace: str, recipe: str) -> RoutingDecision | None:
    """The recipe's newest routing decision, ``None`` when no canary has decided one yet."""
    uri = decision_uri(workspace, recipe)
    return read_decision(uri) if uri else None


def decision_versions(workspace: str, recipe: str) -> list[str]:
    """Every version of the recipe's decision, oldest first."""
    from airflow_image_catalog.storage import list_objects
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    prefix = WorkspaceLayout(workspace).routing_decisions(recipe)
    names = [info.uri.rsplit("/", 1)[-1] for info in list_objects(prefix)]
    return sorted(name[: -len(".json")] for name in names if name.endswith(".json"))


def make_decision(recipe: Any, *, target_pass_rate: float, candidates: Sequence[Candidate],
                  figures: Sequence[CandidateFigures], sample: Mapping[str, Any], run: Mapping[str, Any],
                  candidate_list: str = "") -> RoutingDecision:
    """A decision from a canary's figures: the choice by :func:`~.figures.choose`."""
    from airflow_image_catalog.pipeline.routing.figures import choose

    chosen, reason = choose(list(figures))
    return RoutingDecision(recipe=recipe.name, recipe_fingerprint=getattr(recipe, "fingerprint", ""),
                           target_pass_rate=float(target_pass_rate), candidates=tuple(candidates),
                           figures=tuple(figures), sample=dict(sample), chosen=chosen, reason=reason,
                           run=dict(run), candidate_list=candidate_list)
