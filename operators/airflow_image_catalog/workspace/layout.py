"""Where everything lives under a workspace: the one owner of its paths.

Every task finds its inputs by these names and nothing else spells them out, so a rerun, a
worker on another machine, the UI plugin and the alerts all agree on where a run's state is::

    <workspace>/
      runs/<run key>/               RunLayout
        discovery.json              the run's discovery (commits it; a rerun reuses it)
        chunks/chunk-NNNNN.json     chunk manifests (chunks/rights/: the images the rights check let
                                    through; chunks/capped/: the cost check's cap)
        rights/decision.json        the rights check's decision per image (metadata, faces, reasons)
        state/chunk-NNNNN/          per-image durable state
        jobs/chunk-NNNNN.json       pending provider jobs (deferrable / batch edits)
        intermediate/               a multi-step job recipe's images between steps
        outputs/<image_id>.<ext>    edited images
        edits/chunk-NNNNN.json      edit manifests
        quality/chunk-NNNNN.json    gate manifests (quality/data_docs/chunk-NNNNN/: GX Data Docs)
        cost/decision.json          the cost check's decision; cost/report.json the run's cost
        routing/plan.json           a routed run's plan: each image's candidate, price and bucket
        escalation/                 the escalation step's own run root (state/, outputs/, and edits/ and
                                    quality/ with the chunk's manifests after escalation)
        report.json, report.html    the run report
        canary/                     a canary run's sample (sample.json) and table (report.json, report.md);
                                    each candidate's edits run as their own run, runs/<run key>.candidate-<name>/
      quarantine/<run key>/         quarantined images and their records
      consent/<image_id>.json       images waiting for (or given) a person's consent: the consent queue
      reviews/                      what a reviewer was shown
      state/published_manifest.json what is published now
      routing/<recipe>/             routing decisions: decisions/<version>.json (immutable), latest.json
                                    (the pointer catalog_refresh reads)
      cache/  ledger/  audit/       stores that own the keys below their root

The stores (:class:`~airflow_image_catalog.workspace.cache.ResultCache`, the cost ledger, the audit
store) get their root here and keep their own partitioning beneath it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, overload

from airflow_image_catalog.storage import join_uri
from airflow_image_catalog.workspace.manifest import safe_run_key

CHUNK_NAME = "chunk-{:05d}"


def chunk_name(chunk_index: int) -> str:
    """``chunk-NNNNN``: the name of a chunk's manifests and state folder."""
    return CHUNK_NAME.format(chunk_index)


def is_chunk_document(uri: str) -> bool:
    """Whether ``uri`` names a per-chunk document (``chunk-NNNNN.json``) rather than anything beside it."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith("chunk-") and name.endswith(".json")


class _Under:
    """A fixed path below the layout's root: ``outputs = _Under("outputs")``."""

    def __init__(self, path: str):
        self.path = path

    @overload
    def __get__(self, layout: None, owner: type) -> _Under: ...
    @overload
    def __get__(self, layout: _Rooted, owner: type) -> str: ...
    def __get__(self, layout: _Rooted | None, owner: type) -> _Under | str:
        return self if layout is None else join_uri(layout.root, *self.path.split("/"))


class _PerChunk:
    """A path per chunk below the layout's root: ``edit = _PerChunk("edits", ".json")``, ``run.edit(3)``."""

    def __init__(self, folder: str, suffix: str = ""):
        self.folder, self.suffix = folder, suffix

    @overload
    def __get__(self, layout: None, owner: type) -> _PerChunk: ...
    @overload
    def __get__(self, layout: _Rooted, owner: type) -> Callable[[int], str]: ...
    def __get__(self, layout: _Rooted | None, owner: type) -> _PerChunk | Callable[[int], str]:
        if layout is None:
            return self
        folder = join_uri(layout.root, *self.folder.split("/"))
        return lambda chunk_index: join_uri(folder, chunk_name(chunk_index) + self.suffix)


@dataclass(frozen=True)
class _Rooted:
    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", join_uri(self.root))  # normalised: a plain path becomes file://


@dataclass(frozen=True)
class WorkspaceLayout(_Rooted):
    """Paths under a workspace that outlive one run (or gather every run)."""

    runs = _Under("runs")
    cache = _Under("cache")
    ledger = _Under("ledger")
    audit = _Under("audit")
    quarantine = _Under("quarantine")  # every run's (the review queue lists it)
    reviews = _Under("reviews")
    consent = _Under("consent")  # the consent queue (catalog_consent answers it)
    published_manifest = _Under("state/published_manifest.json")
    routing = _Under("routing")  # versioned routing decisions per recipe (pipeline/routing/decision.py)

    def run(self, run_key: str) -> RunLayout:
        return RunLayout(join_uri(self.runs, run_key))

    def run_for(self, context: Mapping[str, Any]) -> RunLayout:
        """The layout of the DAG run a task context (or anything with its ``run_id``) belongs to."""
        return self.run(safe_run_key(str(context["run_id"])))

    def candidate_run_key(self, run_key: str, candidate: str) -> str:
        """The run key under which a canary run edits its sample with one candidate (its own chunks,
        outputs, cost decision and ledger partition, so candidates never share state)."""
        return safe_run_key(f"{run_key}.candidate-{candidate}")

    def run_quarantine(self, run_key: str) -> str:
        return join_uri(self.quarantine, run_key)

    def consent_record(self, image_id: str) -> str:
        """An image's consent record (image ids may hold ``/``: sources in sub-folders)."""
        return join_uri(self.consent, *f"{image_id}.json".split("/"))

    def routing_decisions(self, recipe: str) -> str:
        """The folder of a recipe's routing decision versions (each immutable once written)."""
        return join_uri(self.routing, safe_run_key(recipe), "decisions")

    def routing_decision(self, recipe: str, version: str) -> str:
        """One version of a recipe's routing decision."""
        return join_uri(self.routing_decisions(recipe), f"{safe_run_key(version)}.json")

    def routing_latest(self, recipe: str) -> str:
        """The pointer to a recipe's newest routing decision (rewritten by each canary)."""
        return join_uri(self.routing, safe_run_key(recipe), "latest.json")

    def review_snapshot(self, run_id: str, task_id: str) -> str:
        """What a review task showed its reviewer (the decision applies to exactly that)."""
        return join_uri(self.reviews, f"{safe_run_key(run_id)}.{task_id}.json")


@dataclass(frozen=True)
class RunLayout(_Rooted):
    """Paths under one run's root, ``<workspace>/runs/<run key>/``."""

    #: the two documents that say how far a run got (relative to its root; the UI lists runs by them)
    REPORT: ClassVar[str] = "report.json"
    COST_DECISION: ClassVar[str] = "cost/decision.json"

    discovery = _Under("discovery.json")
    chunks = _Under("chunks")
    outputs = _Under("outputs")
    edits = _Under("edits")
    quality = _Under("quality")
    cost_decision = _Under(COST_DECISION)  # the edit task and the report read it
    cost_report = _Under("cost/report.json")
    routing_plan = _Under("routing/plan.json")  # the cost check writes it, the edit and escalation follow it
    escalation = _Under("escalation")  # a RunLayout of its own: the escalation step's state, outputs, manifests
    rights_decision = _Under("rights/decision.json")  # the cost check, publish and the report read it
    report_json = _Under(REPORT)
    report_html = _Under("report.html")
    canary_sample = _Under("canary/sample.json")  # a canary's sample: image ids, features, strata
    canary_report = _Under("canary/report.json")  # a canary's table per candidate and its choice
    canary_table = _Under("canary/report.md")

    chunk = _PerChunk("chunks", ".json")
    rights_chunk = _PerChunk("chunks/rights", ".json")  # a chunk cut to the images the rights check let through
    capped_chunk = _PerChunk("chunks/capped", ".json")  # a chunk the cost check cut to what the budget keeps
    state = _PerChunk("state")
    jobs = _PerChunk("jobs", ".json")
    edit = _PerChunk("edits", ".json")
    gate = _PerChunk("quality", ".json")
    data_docs = _PerChunk("quality/data_docs")

    @property
    def run_key(self) -> str:
        return self.root.rsplit("/", 1)[-1]

    def intermediate(self, image_id: str, step: int) -> str:
        """The input of step ``step`` of a job recipe (the previous step's result)."""
        return join_uri(self.root, "intermediate", f"{image_id}.step{step}")
