"""The per-image stages both edit paths run, each written once.

::

    resume ─► settle for free ─► prepare ─► call ─► book ─► land
    (the one    (cache hit, or     (upload     (inline:   (ledger,   (cache put, output,
    skip rule)   budget spent)      + decode)   a recipe;  one entry  state edited | failed)
                                                jobs: a    per paid
                                                submit)    call)

:mod:`~airflow_image_catalog.pipeline.editing.inline` calls the recipe at once;
:mod:`~airflow_image_catalog.pipeline.editing.jobs` submits provider jobs and comes back for them.
Only the *call* differs: what an earlier try left is judged, what is free is settled, the upload
is prepared, paid calls are booked and results land in the same way on both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.backends.base import EditError, EditResult, ImageContext
from airflow_image_catalog.backends.imaging import preflight
from airflow_image_catalog.pipeline.costing.ledger import entries_for_usage, possibly_billed_entries
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.recipes import Recipe
from airflow_image_catalog.storage import StorageError, join_uri, read_bytes, write_bytes
from airflow_image_catalog.workspace.cache import CachedResult
from airflow_image_catalog.workspace.manifest import EditRecord, ImageStatus, SourceItem, sha256_hex
from airflow_image_catalog.workspace.state import ChunkState

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- failures: one image never sinks its chunk ----------------------------------------------------


def _is_expected(exc: BaseException) -> bool:
    """Errors about the image or its inputs, as opposed to bugs worth a traceback."""
    from airflow_image_catalog.imaging.engine import EngineError

    return isinstance(exc, EngineError | EditError | StorageError)


def _is_retryable(exc: BaseException) -> bool:
    """Could a rerun succeed? Provider errors say so; storage hiccups and bugs (after a fix) may."""
    if isinstance(exc, EditError):
        return exc.retryable
    from airflow_image_catalog.imaging.engine import EngineError

    return not isinstance(exc, EngineError)


@contextmanager
def failing(record: EditRecord) -> Iterator[EditRecord]:
    """Any error inside ends ``record`` failed (retryable or final) with its reason and the provider's code."""
    try:
        yield record
    except (Exception, MemoryError) as exc:  # one image must never sink its chunk
        expected = _is_expected(exc)
        record.retryable = _is_retryable(exc)
        record.status = ImageStatus.FAILED_RETRYABLE if record.retryable else ImageStatus.FAILED_FINAL
        record.error = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, EditError):
            record.error_code = exc.code
            record.attempts = exc.attempts or record.attempts
            record.lost_jobs += bool(exc.job_lost)
        log.warning("image %s %s: %s", record.image_id, record.status, record.error, exc_info=not expected)
        record.finished_at = record.finished_at or now()


# -- resume: the one skip rule --------------------------------------------------------------------


def new_record(item: SourceItem, edited_by: dict[str, Any] | None = None) -> EditRecord:
    return EditRecord(item.image_id, item.source_uri, item.source_sha256, ImageStatus.PENDING,
                      started_at=now(), source_bytes=item.bytes, source_etag=item.etag,
                      edited_by=dict(edited_by) if edited_by else None)


def output_intact(record: EditRecord) -> bool:
    """A kept ``edited`` record still has its output (an earlier try's write may not have landed)."""
    if record.status != ImageStatus.EDITED:
        return True
    try:
        return sha256_hex(read_bytes(record.output_uri)) == record.output_sha256
    except StorageError:
        return False


@dataclass
class Resumed:
    """What an image's earlier state leaves this try: its record, and whether anything is left to do."""

    record: EditRecord
    kept: bool = False  # a final result (an edit whose output is intact, or a final failure): nothing to do
    pending_job: dict[str, Any] | None = None  # a provider job an earlier try submitted: collect it


async def resume(run: ChunkRun, item: SourceItem, earlier: dict[str, Any] | None, *,
                 collects_jobs: bool) -> Resumed:
    """Judge what an earlier try recorded for ``item``.

    A final result is kept if its output is still there (else the image is redone); a job an
    earlier try submitted is collected where the path can (``collects_jobs``), never submitted
    again; anything else starts afresh, carrying the count of dead provider jobs (which moves the
    idempotency scope on, see :func:`~airflow_image_catalog.pipeline.editing.calls.idempotency_base`).
    """
    record = new_record(item, run.facts)
    if earlier is None:
        return Resumed(record)
    kept = ChunkState.record_of(earlier)
    if kept.done:
        if await asyncio.to_thread(output_intact, kept):
            log.info("%s: kept %s from an earlier try", item.image_id, kept.status)
            return Resumed(kept, kept=True)
        log.warning("%s: its recorded output %s is gone or changed: editing it again", item.image_id,
                    kept.output_uri)
    elif collects_jobs and earlier.get("pending_job"):
        log.info("%s: resuming recorded job %s", item.image_id, kept.job_id)
        return Resumed(kept, pending_job=earlier["pending_job"])
    record.lost_jobs = kept.lost_jobs
    return Resumed(record)


# -- settle for free ------------------------------------------------------------------------------


def read_source(item: SourceItem) -> bytes:
    source = read_bytes(item.source_uri)
    if sha256_hex(source) != item.source_sha256:
        raise EditError("source changed since discovery (sha256 differs); it will be picked up next run")
    return source


async def settle_for_free(run: ChunkRun, item: SourceItem, record: EditRecord) -> bytes | None:
    """Read the source and its cache key; settle the image for free where possible.

    A cache hit ends it ``edited`` (copied from the cache), a spent budget ``skipped_budget``;
    both return None. Otherwise the source bytes come back: a paid call is needed.
    """
    source = await asyncio.to_thread(read_source, item)
    record.cache_key = key = await asyncio.to_thread(run.key_for, item)
    hit = await asyncio.to_thread(run.cache.get, key) if run.cache else None
    if hit is not None:
        await asyncio.to_thread(store_result, record, run.recipe, hit, run.output_root)
        record.cache_hit = True
        return None
    if run.guard is not None and not await asyncio.to_thread(run.guard.admit, item.image_id):
        guard = run.guard
        record.status = ImageStatus.SKIPPED_BUDGET
        record.error = (f"not submitted: the run's budget (${guard.budget_usd:.2f}) would be exceeded "
                        f"(${guard.spent():.4f} spent, ${guard.held():.4f} held for images in flight, "
                        f"this image reserves ${guard.hold_usd:.4f})")
        return None
    return source


# -- prepare --------------------------------------------------------------------------------------


def prepare_source(run: ChunkRun, source: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """The upload a provider needs, and what was done to get it (None: sent as is).

    A paid backend's upload is decoded whole first: a corrupt or truncated image fails here, free
    (the header a pass-through reads is still there in a truncated JPEG). The local engine decodes
    the source itself and costs nothing.
    """
    from airflow_image_catalog.backends.prepare import limits_for, prepare_upload

    backend = run.backend
    upload, facts = prepare_upload(source, limits_for(backend.name, backend.model))
    if backend.capabilities.paid:
        preflight(upload)
    return upload, (facts if facts.get("actions") else None)


async def prepare(run: ChunkRun, item: SourceItem, record: EditRecord, source: bytes) -> tuple[bytes, ImageContext]:
    """The upload the provider gets (recorded in ``record.preparation``) and the image's context
    (which scales full-size masks to a downscaled upload)."""
    upload, record.preparation = await asyncio.to_thread(prepare_source, run, source)
    facts = record.preparation["source"] if record.preparation else None
    return upload, run.context(item, (facts["width"], facts["height"]) if facts else None)


# -- book -----------------------------------------------------------------------------------------


def book(run: ChunkRun, item: SourceItem, key: str | None, usage: list[dict[str, Any]], first_call: int = 0, *,
         possibly_billed: list[dict[str, Any]] = ()) -> None:
    """Book the paid calls behind ``usage`` in the ledger (idempotent: a rerun's replay books nothing new),
    and each attempt in ``possibly_billed`` (its answer lost after the body was sent) as possibly billed."""
    if run.ledger is None or not (usage or possibly_billed):
        return
    facts = {"cache_key": key, "run_key": run.chunk.run_key, "image_id": item.image_id,
             "chunk_index": run.chunk.chunk_index, "source_sha256": item.source_sha256, "recipe": run.recipe.name,
             **{k: run.facts.get(k) for k in ("dag_id", "run_id", "task_id", "map_index")}}
    entries = entries_for_usage(usage, estimated_usd=run.estimate_usd, first_call_index=first_call, **facts)
    if possibly_billed:
        per_call = run.estimate_usd / len(run.recipe.steps) if run.estimate_usd is not None else None
        entries += possibly_billed_entries(possibly_billed, usage, provider=run.backend.name,
                                           model=run.backend.model, estimated_usd=per_call, **facts)
    run.ledger.record(entries)
    if run.guard is not None:
        run.guard.add(sum(entry.usd for entry in entries))


# -- land -----------------------------------------------------------------------------------------


def output_uri_for(record: EditRecord, recipe: Recipe, output_root: str) -> str:
    return join_uri(output_root, f"{record.image_id}.{recipe.step_output(recipe.steps[-1]).extension}")


def store_result(record: EditRecord, recipe: Recipe, result: EditResult, output_root: str) -> None:
    """Write an edited image to the run's outputs and fill its record (status ``edited``)."""
    record.output_uri = write_bytes(output_uri_for(record, recipe, output_root), result.data)
    record.output_sha256 = sha256_hex(result.data)
    record.output_format = result.format
    record.width, record.height = result.width, result.height
    record.steps, record.usage, record.rounds = list(result.steps), list(result.usage), list(result.rounds)
    record.attempts = result.attempts  # 0 for a cache hit: it made no request
    record.status, record.error, record.error_code, record.retryable = ImageStatus.EDITED, None, None, None


def _cached(result: EditResult, recipe: Recipe, run: dict[str, Any]) -> CachedResult:
    return CachedResult(
        data=result.data, format=result.format, extension=recipe.step_output(recipe.steps[-1]).extension,
        width=result.width, height=result.height, sha256=sha256_hex(result.data), usage=result.usage,
        steps=result.steps, rounds=result.rounds, created_by=run,
    )


def land_result(run: ChunkRun, record: EditRecord, result: EditResult) -> None:
    """A paid result: into the cache first (a rerun finds it for free even if what follows fails),
    then the run's outputs and the record."""
    if run.cache and record.cache_key:
        run.cache.put(record.cache_key, _cached(result, run.recipe, run.run_facts()))
    store_result(record, run.recipe, result, run.output_root)


async def land(run: ChunkRun, record: EditRecord, started: float | None = None) -> EditRecord:
    """Record how the image ended, durably (``started``: the ``perf_counter`` its work began at), and free
    its budget hold (its actual cost was booked before)."""
    if run.guard is not None:
        run.guard.release(record.image_id)
    record.finished_at = now()
    if started is not None:
        record.seconds = round(time.perf_counter() - started, 4)
    try:
        await asyncio.to_thread(run.state.save, record)
    except StorageError as exc:  # a paid output is in the cache: a rerun finds it for free
        log.warning("%s: could not record its state (%s)", record.image_id, exc)
    return record


def log_record(record: EditRecord) -> None:
    how = " (cache hit)" if record.cache_hit else ""
    log.info("%s %s%s (%.2fs)%s", record.status, record.image_id, how, record.seconds or 0.0,
             f": {record.error}" if record.error else "")
