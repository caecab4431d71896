"""What one edit task does, as plain functions (no Airflow import): ``ImageEditOperator`` calls these.

:func:`load_chunk_run` wires a chunk to its recipe, backend, cost decision, ledger and budget guard;
:func:`uses_jobs` picks the path; the inline path is :func:`edit_inline`; the jobs path is
:func:`start_or_resume_jobs`, then :func:`advance` per trigger event until no job is pending, with
the jobs manifest persisted by :func:`save_jobs` before every wait, and
:func:`~airflow_image_catalog.pipeline.editing.jobs.finish_jobs` once none is; :func:`finish_chunk` writes
the edit manifest and applies the task's failure policy; :func:`cancel_jobs` is ``on_kill``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow_image_catalog.backends.base import EditBackend, is_jobs
from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.costing.decision import BudgetGuard
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.pipeline.editing.inline import aedit_chunk
from airflow_image_catalog.pipeline.editing.jobs import advance_jobs, start_jobs
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.storage import StorageError, read_json, read_json_if_exists, write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest, ImageStatus

log = logging.getLogger(__name__)

FATAL_CODES = ("insufficient_credits",)  # the account cannot pay: alert, do not retry


class ChunkFailed(CatalogError):
    """The chunk's edit must fail its task without retries (its manifest is written first, so it alerts)."""

    def __init__(self, message: str, manifest_uri: str):
        super().__init__(message)
        self.manifest_uri = manifest_uri


def load_chunk_run(chunk_manifest_uri: str, recipe: str, workspace: str,
                   get_backend: Callable[[dict[str, Any] | None], EditBackend], *,
                   facts: Mapping[str, Any] | None = None, concurrency: int | None = None,
                   use_cache: bool = True) -> ChunkRun:
    """The chunk's :class:`ChunkRun`: chunk, recipe, backend, run root, cache, ledger and guard.

    The cost check's decision (``runs/<run>/cost/decision.json``), when there is one, brings the
    downgrade's overrides (passed to ``get_backend``), the per-image estimate and the run's budget
    for the mid-run guard. Paid backends book every call in the workspace's ledger.
    """

    chunk = ChunkManifest.from_dict(read_json(chunk_manifest_uri))
    layout = WorkspaceLayout(workspace).run(chunk.run_key)
    decision = read_json_if_exists(layout.cost_decision, {})
    backend = get_backend(decision.get("overrides"))
    ledger = Ledger(workspace) if backend.capabilities.paid else None
    guard = budget_guard(decision, ledger, chunk.run_key,
                         decision.get("per_image_high_usd") or decision.get("per_image_usd") or 0.0)
    return ChunkRun(chunk, load_recipe(recipe), backend, layout.root, workspace=workspace if use_cache else None,
                    concurrency=concurrency, ledger=ledger, facts=dict(facts or {}),
                    estimate_usd=decision.get("per_image_usd"), guard=guard,
                    overrides=decision.get("overrides") or {})


def budget_guard(decision: Mapping[str, Any], ledger: Ledger | None, run_key: str, hold_usd: float) -> BudgetGuard | None:
    """The mid-run guard over the run's budget (``available_usd`` of the cost decision), or None when
    nothing is booked (a free backend) or no budget applies; each image admitted holds ``hold_usd``."""
    if ledger is None or decision.get("available_usd") is None:
        return None
    return BudgetGuard(float(decision["available_usd"]), lambda: ledger.run_spend(run_key), hold_usd=hold_usd)


def uses_jobs(run: ChunkRun, deferrable: bool) -> bool:
    """The jobs path: a route that only has jobs (a batch), or a deferrable task on a job backend."""
    can = run.backend.capabilities
    return can.jobs_only or (deferrable and can.jobs)


def edit_inline(run: ChunkRun) -> EditManifest:
    return run.manifest(asyncio.run(aedit_chunk(run)))


# -- the jobs path: the jobs manifest ``runs/<run>/jobs/chunk-NNNNN.json`` -------------------------


def load_jobs(run: ChunkRun) -> dict[str, Any] | None:
    uri = run.layout.jobs(run.chunk.chunk_index)
    return read_json_if_exists(uri)


def save_jobs(run: ChunkRun, state: dict[str, Any]) -> None:
    """Persist the pending job ids (before any wait: a kill or a retry collects them, never pays again)."""
    write_json(run.layout.jobs(run.chunk.chunk_index), state)


def pending_jobs(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """image id -> the provider job to poll."""
    return {key: entry["job"] for key, entry in state["pending"].items()}


def start_or_resume_jobs(run: ChunkRun, job_timeout_s: float) -> dict[str, Any]:
    """The jobs manifest to wait on: a retry resumes the recorded jobs; a first try, or a rerun after
    the jobs ended, submits (finals kept, retryable failures redone, per the per-image state)."""
    state = load_jobs(run)
    if state is not None and state["pending"]:
        log.info("resuming %d recorded jobs of chunk %d", len(state["pending"]), run.chunk.chunk_index)
        return state
    state = asyncio.run(start_jobs(run))
    # a batch backend's completion window (24 h) outlasts a shorter job_timeout
    state["deadline"] = time.time() + max(job_timeout_s, run.backend.capabilities.job_timeout_s)
    return state


def advance(run: ChunkRun, state: dict[str, Any] | None, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The jobs manifest after a trigger's results (``state`` None: read the persisted one)."""
    return asyncio.run(advance_jobs(state if state is not None else read_json(run.layout.jobs(run.chunk.chunk_index)),
                                    results, run))


def cancel_jobs(run: ChunkRun) -> None:
    """Cancel the chunk's recorded jobs where the provider allows (best effort: ``on_kill``)."""
    backend = run.backend
    try:
        pending = read_json(run.layout.jobs(run.chunk.chunk_index))["pending"]
    except StorageError:
        return
    if not pending or not is_jobs(backend):
        return

    async def cancel_all() -> None:
        try:
            await asyncio.gather(*(backend.acancel(e["job"]) for e in pending.values()), return_exceptions=True)
        finally:
            await backend.transport.aclose()

    asyncio.run(cancel_all())


# -- the end: the edit manifest and the task's failure policy --------------------------------------


def finish_chunk(manifest: EditManifest, run: ChunkRun, max_failure_rate: float) -> str:
    """Write the edit manifest; return its URI, or raise :class:`ChunkFailed` (after writing it).

    One bad image never fails the chunk; the task fails when the account cannot pay
    (:data:`FATAL_CODES`) or when more than ``max_failure_rate`` of the images failed finally.
    The reason goes into the manifest (``failure``) too, so the run's report can say it.
    """
    return write_edit_manifest(manifest, run.layout, max_failure_rate)


def finish_routed(manifest: EditManifest, max_failure_rate: float, *, workspace: str) -> str:
    """:func:`finish_chunk` for a routed chunk (its images ran on several candidates' backends)."""
    return write_edit_manifest(manifest, WorkspaceLayout(workspace).run(manifest.run_key), max_failure_rate)


def write_edit_manifest(manifest: EditManifest, layout: Any, max_failure_rate: float) -> str:
    manifest.failure = chunk_failure(manifest, max_failure_rate)
    uri = write_json(layout.edit(manifest.chunk_index), manifest.to_dict())
    hits = sum(r.cache_hit for r in manifest.items)
    log.info("chunk %d done: %s (%d from the result cache); manifest %s", manifest.chunk_index, manifest.counts(),
             hits, uri)
    if manifest.failure:
        raise ChunkFailed(f"{manifest.failure}; manifest {uri}", uri)
    return uri


def chunk_failure(manifest: EditManifest, max_failure_rate: float) -> str | None:
    """Why the chunk's task must fail, or None: a fatal provider error, or too many final failures."""
    fatal = [r for r in manifest.items if r.error_code in FATAL_CODES]
    if fatal:
        return f"{manifest.backend}: {fatal[0].error_code} ({len(fatal)} images not edited): {fatal[0].error}"
    failed, total = manifest.counts().get(ImageStatus.FAILED_FINAL, 0), len(manifest.items)
    if total and failed / total > max_failure_rate:
        return (f"chunk {manifest.chunk_index}: {failed} of {total} images failed finally, more than the allowed "
                f"{max_failure_rate:.0%}")
    return None
