"""Where everything lives under a workspace: the one owner of its paths.

Every task finds its inputs by these names and nothing else spells them out, so a rerun, a
worker on another machine, the UI plugin and the alerts all agree on where a run's state is::

    <workspace>/
      runs/<run key>/               RunLayout
        discovery.json              the run's discovery (commits it; a rerun reuses it)
        chunks/chunk-NNNNN.json     chunk manifests (chunks/capped/: the cost check's cap)
        state/chunk-NNNNN/          per-image durable state
        jobs/chunk-NNNNN.json       pending provider jobs (deferrable / batch edits)
        intermediate/               a multi-step job recipe's images between steps
        outputs/<image_id>.<ext>    edited images
        edits/chunk-NNNNN.json      edit manifests
        quality/chunk-NNNNN.json    gate manifests (quality/data_docs/chunk-NNNNN/: GX Data Docs)
        cost/decision.json          the cost check's decision; cost/report.json the run's cost
        report.json, report.html    the run report
      quarantine/<run key>/         quarantined images and their records
      reviews/                      what a reviewer was shown
      state/published_manifest.json what is published now
      cache/  ledger/  audit/       stores that own the keys below their root

The stores (:class:`~airflow_image_catalog.workspace.cache.ResultCache`, the cost ledger, the audit
store) get their root here and keep their own partitioning beneath it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class WorkspaceLayout:
    """Paths under a workspace that outlive one run (or gather every run)."""

    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", join_uri(self.root))

    @property
    def runs(self) -> str:
        return join_uri(self.root, "runs")

    def run(self, run_key: str) -> RunLayout:
        return RunLayout(join_uri(self.runs, run_key))

    def run_for(self, context: Mapping[str, Any]) -> RunLayout:
        """The layout of the DAG run a task context belongs to."""
        return self.run(safe_run_key(str(context["run_id"])))

    @property
    def cache(self) -> str:
        return join_uri(self.root, "cache")

    @property
    def ledger(self) -> str:
        return join_uri(self.root, "ledger")

    @property
    def audit(self) -> str:
        return join_uri(self.root, "audit")

    @property
    def quarantine(self) -> str:
        """Every run's quarantine (the review queue lists it)."""
        return join_uri(self.root, "quarantine")

    def run_quarantine(self, run_key: str) -> str:
        return join_uri(self.quarantine, run_key)

    def review_snapshot(self, run_id: str, task_id: str) -> str:
        """What a review task showed its reviewer (the decision applies to exactly that)."""
        return join_uri(self.root, "reviews", f"{safe_run_key(run_id)}.{task_id}.json")

    @property
    def published_manifest(self) -> str:
        return join_uri(self.root, "state", "published_manifest.json")


@dataclass(frozen=True)
class RunLayout:
    """Paths under one run's root, ``<workspace>/runs/<run key>/``."""

    #: the two documents that say how far a run got (relative to its root; the UI lists runs by them)
    REPORT: ClassVar[str] = "report.json"
    COST_DECISION: ClassVar[str] = "cost/decision.json"

    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", join_uri(self.root))

    @property
    def run_key(self) -> str:
        return self.root.rsplit("/", 1)[-1]

    @property
    def discovery(self) -> str:
        return join_uri(self.root, "discovery.json")

    @property
    def chunks(self) -> str:
        return join_uri(self.root, "chunks")

    def chunk(self, chunk_index: int) -> str:
        return join_uri(self.chunks, f"{chunk_name(chunk_index)}.json")

    def capped_chunk(self, chunk_index: int) -> str:
        """A chunk manifest the cost check cut down to the images the budget keeps."""
        return join_uri(self.chunks, "capped", f"{chunk_name(chunk_index)}.json")

    def state(self, chunk_index: int) -> str:
        return join_uri(self.root, "state", chunk_name(chunk_index))

    def jobs(self, chunk_index: int) -> str:
        return join_uri(self.root, "jobs", f"{chunk_name(chunk_index)}.json")

    def intermediate(self, image_id: str, step: int) -> str:
        """The input of step ``step`` of a job recipe (the previous step's result)."""
        return join_uri(self.root, "intermediate", f"{image_id}.step{step}")

    @property
    def outputs(self) -> str:
        return join_uri(self.root, "outputs")

    @property
    def edits(self) -> str:
        return join_uri(self.root, "edits")

    def edit(self, chunk_index: int) -> str:
        return join_uri(self.edits, f"{chunk_name(chunk_index)}.json")

    @property
    def quality(self) -> str:
        return join_uri(self.root, "quality")

    def gate(self, chunk_index: int) -> str:
        return join_uri(self.quality, f"{chunk_name(chunk_index)}.json")

    def data_docs(self, chunk_index: int) -> str:
        return join_uri(self.quality, "data_docs", chunk_name(chunk_index))

    @property
    def cost_decision(self) -> str:
        """The cost check's decision (the edit task and the report read it)."""
        return join_uri(self.root, self.COST_DECISION)

    @property
    def cost_report(self) -> str:
        return join_uri(self.root, "cost", "report.json")

    @property
    def report_json(self) -> str:
        return join_uri(self.root, self.REPORT)

    @property
    def report_html(self) -> str:
        return join_uri(self.root, "report.html")
