"""Edit one chunk of images through a backend; every image ends with a recorded, durable state.

Per image: a recorded final result from an earlier try is kept; a result-cache hit is
reused for free; otherwise the upload is prepared (downscaled, converted, stripped),
the state ``submitted`` is written, the paid call is made (its requests carry
idempotency keys derived from the cache key), and the output goes to the cache, the
run's outputs and the state (``edited``), or the failure is recorded
(``failed_retryable`` / ``failed_final``). A bad image fails alone; the chunk goes on.
Images run concurrently, bounded by ``concurrency`` (and each backend's own limiter).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.backends.base import (
    EditError,
    EditResult,
    ImageContext,
    backend_identity,
    bills_at_submit,
    is_async,
    is_batch,
)
from airflow_image_catalog.recipes import AUTO_MASKS, Recipe, portable_ref
from airflow_image_catalog.storage import StorageError, join_uri, read_bytes, write_bytes
from airflow_image_catalog.workspace.cache import CachedResult, ResultCache, cache_key
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import (
    FAILED_STATUSES,
    ChunkManifest,
    EditManifest,
    EditRecord,
    ImageStatus,
    SourceItem,
    sha256_hex,
)
from airflow_image_catalog.workspace.state import ChunkState

log = logging.getLogger(__name__)

DEFAULT_LOCAL_CONCURRENCY = max(1, os.cpu_count() or 1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
def _failing(record: EditRecord) -> Iterator[EditRecord]:
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
        record.finished_at = record.finished_at or _now()


def new_record(item: SourceItem, edited_by: dict[str, Any] | None = None) -> EditRecord:
    return EditRecord(item.image_id, item.source_uri, item.source_sha256, ImageStatus.PENDING,
                      started_at=_now(), source_bytes=item.bytes, source_etag=item.etag,
                      edited_by=dict(edited_by) if edited_by else None)


def read_source(item: SourceItem) -> bytes:
    source = read_bytes(item.source_uri)
    if sha256_hex(source) != item.source_sha256:
        raise EditError("source changed since discovery (sha256 differs); it will be picked up next run")
    return source


def output_uri_for(record: EditRecord, recipe: Recipe, output_root: str) -> str:
    return join_uri(output_root, f"{record.image_id}.{recipe.step_output(recipe.steps[-1]).extension}")


def store_result(record: EditRecord, recipe: Recipe, result: EditResult | CachedResult, output_root: str) -> None:
    """Write an edited image to the run's outputs and fill its record (status ``edited``)."""
    record.output_uri = write_bytes(output_uri_for(record, recipe, output_root), result.data)
    record.output_sha256 = sha256_hex(result.data)
    record.output_format = result.format
    record.width, record.height = result.width, result.height
    record.steps, record.usage, record.rounds = list(result.steps), list(result.usage), list(result.rounds)
    record.attempts = getattr(result, "attempts", 0)
    record.status, record.error, record.error_code, record.retryable = ImageStatus.EDITED, None, None, None


def _cached(result: EditResult, recipe: Recipe, run: dict[str, Any]) -> CachedResult:
    return CachedResult(
        data=result.data, format=result.format, extension=recipe.step_output(recipe.steps[-1]).extension,
        width=result.width, height=result.height, sha256=sha256_hex(result.data), usage=result.usage,
        steps=result.steps, rounds=result.rounds, created_by=run,
    )


def _output_intact(record: EditRecord) -> bool:
    """A kept ``edited`` record still has its output (an earlier try's write may not have landed)."""
    if record.status != ImageStatus.EDITED:
        return True
    try:
        return sha256_hex(read_bytes(record.output_uri)) == record.output_sha256
    except StorageError:
        return False


def _log_record(record: EditRecord) -> None:
    how = " (cache hit)" if record.cache_hit else ""
    log.info("%s %s%s (%.2fs)%s", record.status, record.image_id, how, record.seconds or 0.0,
             f": {record.error}" if record.error else "")


# -- the per-chunk runner -----------------------------------------------------------------------


@dataclass
class ChunkRun:
    """Everything one chunk's edit needs; ``workspace`` None disables the result cache."""

    chunk: ChunkManifest
    recipe: Recipe
    backend: Any
    run_root: str
    workspace: str | None = None
    concurrency: int | None = None
    refs: dict[str, bytes] = field(default_factory=dict, repr=False)  # masks / references, read once per chunk
    #: where each paid call is booked (None: not booked, e.g. the local engine's free edits)
    ledger: Any = None
    facts: dict[str, Any] = field(default_factory=dict)  # dag_id, run_id, task_id, map_index for the ledger
    estimate_usd: float | None = None  # the cost check's per-image estimate (booked when usage is missing)
    guard: Any = None  # a costing.BudgetGuard: stop paid work when the run's budget is spent
    overrides: dict[str, Any] = field(default_factory=dict)  # connection settings the cost check replaced

    def __post_init__(self) -> None:
        self.layout = RunLayout(self.run_root)
        self.state = ChunkState(self.run_root, self.chunk.chunk_index)
        self.cache = ResultCache(self.workspace) if self.workspace else None
        self.output_root = self.layout.outputs
        self.identity = backend_identity(self.backend)
        if self.concurrency is None:
            backend = self.backend
            self.concurrency = backend.transport.settings.max_concurrency if is_async(backend) else \
                DEFAULT_LOCAL_CONCURRENCY

    def context(self, item: SourceItem, source_size: tuple[int, int] | None = None) -> ImageContext:
        return ImageContext(item.image_id, self.chunk.source_root, self.recipe.recipe_dir, cache=self.refs,
                            source_size=source_size)

    def key_for(self, item: SourceItem) -> str:
        """The image's content address: source, each step's mask and references, recipe, backend."""
        context = self.context(item)
        inputs = []
        for step in self.recipe.steps:
            mask = step.mask if step.mask in (None, *AUTO_MASKS) else sha256_hex(context.read(step.mask))
            inputs.append({"mask": mask, "references": [sha256_hex(r) for r in context.references(step)]})
        return cache_key(source_sha256=item.source_sha256, recipe_fingerprint=self.recipe.fingerprint,
                         backend=self.identity, inputs=inputs)

    def run_facts(self) -> dict[str, Any]:
        return {"run_key": self.chunk.run_key, "chunk_index": self.chunk.chunk_index}


async def _call(backend: Any, image: bytes, recipe: Recipe, context: ImageContext, scope: str) -> EditResult:
    """One backend call for ``recipe`` on ``image``; its paid requests are keyed under ``scope``."""
    from airflow_image_catalog.backends.http import idempotency_scope

    with idempotency_scope(scope):
        if is_async(backend):
            return await backend.aedit(image, recipe, context)
        return await asyncio.to_thread(backend.edit, image, recipe, context)


def idempotency_base(key: str, lost_jobs: int = 0) -> str:
    """The idempotency scope of an image's calls: its cache key, plus a generation per dead provider job."""
    return key[:32] if not lost_jobs else f"{key[:32]}-j{lost_jobs}"


async def run_recipe(backend: Any, upload: bytes, recipe: Recipe, context: ImageContext, key: str,
                     lost_jobs: int = 0) -> EditResult:
    """The whole recipe on ``upload``; with drift control, round by round (see :class:`DriftControl`).

    ``lost_jobs`` (dead provider jobs of earlier tries) moves the idempotency scope on: see
    :func:`idempotency_base`.
    """
    base = idempotency_base(key, lost_jobs)
    if recipe.drift is None or len(recipe.steps) == 1:
        return await _call(backend, upload, recipe, context, base)
    from airflow_image_catalog.imaging.engine import decode_image
    from airflow_image_catalog.pipeline.quality.drift import measure_drift

    source = await asyncio.to_thread(decode_image, upload)
    prompt_driven = backend.capabilities.prompt_driven
    image, usage, steps, rounds, attempts, regenerations = upload, [], [], [], 0, 0
    result: EditResult | None = None
    for index, step in enumerate(recipe.steps):
        result = await _call(backend, image, recipe.round(index), context, f"{base}-r{index}")
        figures = await asyncio.to_thread(measure_drift, source, await asyncio.to_thread(decode_image, result.data))
        entry: dict[str, Any] = {"round": index + 1, "step": step.id, **figures, "decision": "continue"}
        spent = [result]
        if recipe.drift.exceeded(figures):
            if regenerations < recipe.drift.max_regenerations:
                regenerations += 1
                regeneration = recipe.regeneration(index, prompt_driven=prompt_driven)
                result = await _call(backend, upload, regeneration, context, f"{base}-g{index}")
                after = await asyncio.to_thread(measure_drift, source,
                                                await asyncio.to_thread(decode_image, result.data))
                entry.update(decision="regenerated_from_source", regenerated=after,
                             instruction=regeneration.steps[0].prompt if prompt_driven else
                             [s.id for s in regeneration.steps])
                spent.append(result)
            else:
                entry["decision"] = "over_threshold_kept"
        log.info("%s round %d (%s): phash %d, ssim %.3f: %s", context.image_id, index + 1, step.id,
                 figures["phash_distance"], figures["product_ssim"], entry["decision"])
        for paid in spent:
            usage += paid.usage
            steps += paid.steps
            attempts += paid.attempts
        rounds.append(entry)
        image = result.data
    assert result is not None
    return EditResult(result.data, result.format, result.width, result.height, usage=usage, steps=steps,
                      attempts=attempts, rounds=rounds)


def prepare_source(backend: Any, source: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """The upload a provider needs, and what was done to get it (None: sent as is)."""
    from airflow_image_catalog.backends.prepare import limits_for, prepare_upload

    upload, facts = prepare_upload(source, limits_for(backend.name, backend.model))
    return upload, (facts if facts.get("actions") else None)


def book(run: ChunkRun, item: SourceItem, key: str, usage: list[dict[str, Any]], first_call: int = 0) -> None:
    """Book the paid calls behind ``usage`` in the ledger (idempotent: a rerun's replay books nothing new)."""
    if run.ledger is None or not usage:
        return
    from airflow_image_catalog.pipeline.costing.ledger import entries_for_usage

    entries = entries_for_usage(
        usage, cache_key=key, run_key=run.chunk.run_key, image_id=item.image_id, estimated_usd=run.estimate_usd,
        first_call_index=first_call, chunk_index=run.chunk.chunk_index, source_sha256=item.source_sha256,
        recipe=run.recipe.name, **{k: run.facts.get(k) for k in ("dag_id", "run_id", "task_id", "map_index")})
    run.ledger.record(entries)
    if run.guard is not None:
        run.guard.add(sum(entry.usd for entry in entries))


async def prepare_upload_for(run: ChunkRun, item: SourceItem, record: EditRecord,
                             source: bytes) -> tuple[bytes, ImageContext]:
    """The upload the provider gets (recorded in ``record.preparation``) and the image's context
    (which scales full-size masks to a downscaled upload)."""
    upload, record.preparation = await asyncio.to_thread(prepare_source, run.backend, source)
    facts = record.preparation["source"] if record.preparation else None
    return upload, run.context(item, (facts["width"], facts["height"]) if facts else None)


async def settle_without_paying(run: ChunkRun, item: SourceItem, record: EditRecord) -> bytes | None:
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
    if run.guard is not None and await asyncio.to_thread(run.guard.exhausted):
        record.status = ImageStatus.SKIPPED_BUDGET
        record.error = f"not submitted: the run's budget (${run.guard.budget_usd:.2f}) is spent"
        return None
    return source


async def edit_one(run: ChunkRun, item: SourceItem, earlier: dict[str, Any] | None) -> EditRecord:
    """One image, from its earlier state (if any) to a final recorded state."""
    record = new_record(item, run.facts)
    if earlier is not None:
        kept = ChunkState.record_of(earlier)
        if kept.done and await asyncio.to_thread(_output_intact, kept):
            log.info("%s: kept %s from an earlier try", item.image_id, kept.status)
            return kept
        record.lost_jobs = kept.lost_jobs
    started = time.perf_counter()
    with _failing(record):
        source = await settle_without_paying(run, item, record)
        if source is not None:
            key = record.cache_key
            upload, context = await prepare_upload_for(run, item, record, source)
            record.status = ImageStatus.SUBMITTED
            await asyncio.to_thread(run.state.save, record)  # durable before the paid call
            try:
                result = await run_recipe(run.backend, upload, run.recipe, context, key, record.lost_jobs)
            except EditError as exc:  # calls billed before the failure are booked all the same
                record.usage = list(exc.usage)
                await asyncio.to_thread(book, run, item, key, exc.usage)
                raise
            await asyncio.to_thread(book, run, item, key, result.usage)  # before anything else: never unbooked
            if run.cache:
                await asyncio.to_thread(run.cache.put, key, _cached(result, run.recipe, run.run_facts()))
            await asyncio.to_thread(store_result, record, run.recipe, result, run.output_root)
    record.finished_at = _now()
    record.seconds = round(time.perf_counter() - started, 4)
    try:
        await asyncio.to_thread(run.state.save, record)  # durable after the paid call
    except StorageError as exc:  # the output is in the cache: a rerun finds it for free
        log.warning("%s: could not record its state (%s)", item.image_id, exc)
    return record


async def aedit_chunk(run: ChunkRun) -> list[EditRecord]:
    earlier = await asyncio.to_thread(run.state.load)
    await asyncio.to_thread(run.state.start)
    slots = asyncio.Semaphore(max(1, int(run.concurrency)))

    async def bounded(item: SourceItem) -> EditRecord:
        async with slots:
            return await edit_one(run, item, earlier.get(item.image_id))

    backend = run.backend
    try:
        records = await asyncio.gather(*(bounded(item) for item in run.chunk.items))
    finally:
        if is_async(backend):
            await backend.transport.aclose()
    for record in records:
        _log_record(record)
    return list(records)


def new_manifest(chunk: ChunkManifest, recipe: Recipe, backend: Any, records: list[EditRecord]) -> EditManifest:
    return EditManifest(
        run_key=chunk.run_key,
        chunk_index=chunk.chunk_index,
        # "ref" loads the recipe on any worker; "origin" (where this one read it) is for people
        recipe={"name": recipe.name, "fingerprint": recipe.fingerprint, "origin": recipe.origin,
                "ref": portable_ref(recipe)},
        backend=backend.name,
        model=backend.model,
        items=records,
    )


def edit_chunk(chunk: ChunkManifest, recipe: Recipe, backend: Any, *, run_root: str, workspace: str | None = None,
               concurrency: int | None = None) -> EditManifest:
    """Edit every image of ``chunk``; outputs go under ``run_root/outputs``, named by image id.

    Rerunning with the same ``run_root`` keeps every image already final; ``workspace``
    enables the result cache shared by every run.
    """
    run = ChunkRun(chunk, recipe, backend, run_root, workspace, concurrency)
    return new_manifest(chunk, recipe, backend, asyncio.run(aedit_chunk(run)))


# -- asynchronous providers, deferrable: submit -> (trigger polls) -> collect -> next step ------
# Every submission is recorded in the image's durable state (with its job id) as soon as the
# provider answers, and the jobs manifest (``runs/<run>/jobs/chunk-NNNNN.json``) holds the
# pending jobs before the task defers, so a timeout, a kill or a rerun collects a submitted
# job instead of paying for it again.


class _Submissions:
    """Submits recipe steps as jobs and records them as pending (in the jobs manifest and the state).

    Backends with ``asubmit_many`` (the OpenAI Batch API) get every step queued by
    :meth:`add` in one call at :meth:`flush` (one batch); others submit at once.
    """

    def __init__(self, run: ChunkRun, pending: dict[str, Any]):
        self.run, self.pending = run, pending
        self.queued: list[tuple[EditRecord, bytes, int, ImageContext]] = []

    def _record(self, record: EditRecord, job: dict[str, Any], image: bytes, step: int) -> None:
        record.job_id, record.status = job["id"], ImageStatus.SUBMITTED
        entry = {"step": step, "job": job}
        if step:
            entry["image_uri"] = write_bytes(self.run.layout.intermediate(record.image_id, step), image)
        self.pending[record.image_id] = entry
        self.run.state.save(record, pending_job=entry)

    async def add(self, record: EditRecord, image: bytes, step: int, context: ImageContext) -> None:
        from airflow_image_catalog.backends.http import idempotency_scope

        if is_batch(self.run.backend):
            self.queued.append((record, image, step, context))
            return
        with idempotency_scope(f"{idempotency_base(record.cache_key, record.lost_jobs)}-s{step}"):
            job = await self.run.backend.asubmit(image, self.run.recipe, step, context)
        await asyncio.to_thread(self._record, record, job, image, step)

    async def flush(self) -> None:
        from airflow_image_catalog.backends.http import idempotency_scope

        queued, self.queued = self.queued, []
        if not queued:
            return
        scope = sha256_hex("".join(f"{r.cache_key}:{step}" for r, _, step, _ in queued).encode())[:32]
        try:
            with idempotency_scope(scope):
                jobs = await self.run.backend.asubmit_many(
                    [(r.image_id, image, step, ctx) for r, image, step, ctx in queued], self.run.recipe)
        except Exception as exc:  # the whole batch was refused: every image in it fails with the reason
            for record, *_ in queued:
                with _failing(record):
                    raise exc
                self.run.state.save(record)
            return
        for record, image, step, _ in queued:
            with _failing(record):
                self._record(record, jobs[record.image_id], image, step)


def _records_dict(records: dict[str, EditRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records.values()]


async def start_jobs(run: ChunkRun) -> dict[str, Any]:
    """Submit the first recipe step of every image without a final result or a job already out.

    Returns the jobs manifest to persist. An image's earlier state decides: a final result is
    kept, a recorded job is resumed (collected, never resubmitted), a cache hit is free.
    """
    earlier = await asyncio.to_thread(run.state.load)
    await asyncio.to_thread(run.state.start)
    pending: dict[str, Any] = {}
    records: dict[str, EditRecord] = {}
    submissions = _Submissions(run, pending)

    async def one(item: SourceItem) -> None:
        state = earlier.get(item.image_id)
        lost_jobs = 0
        if state is not None:
            kept = ChunkState.record_of(state)
            if kept.done or state.get("pending_job"):
                records[item.image_id] = kept
                if state.get("pending_job") and not kept.done:
                    pending[item.image_id] = state["pending_job"]
                    log.info("%s: resuming recorded job %s", item.image_id, kept.job_id)
                return
            lost_jobs = kept.lost_jobs
        record = records[item.image_id] = new_record(item, run.facts)
        record.lost_jobs = lost_jobs
        with _failing(record):
            source = await settle_without_paying(run, item, record)
            if source is None:
                record.finished_at = _now()
                await asyncio.to_thread(run.state.save, record)
                return
            from airflow_image_catalog.backends.imaging import preflight

            upload, context = await prepare_upload_for(run, item, record, source)
            await asyncio.to_thread(preflight, upload)  # before a job is paid for
            await submissions.add(record, upload, 0, context)
        if record.status in FAILED_STATUSES:
            await asyncio.to_thread(run.state.save, record)

    try:
        await asyncio.gather(*(one(item) for item in run.chunk.items))
        await submissions.flush()
    finally:
        await run.backend.transport.aclose()
    return {"kind": "jobs", "run_key": run.chunk.run_key, "chunk_index": run.chunk.chunk_index,
            "records": _records_dict({i.image_id: records[i.image_id] for i in run.chunk.items}), "pending": pending}


async def advance_jobs(state: dict[str, Any], results: dict[str, dict[str, Any]], run: ChunkRun) -> dict[str, Any]:
    """Apply a trigger's results: download ready images (at once), submit next steps, record failures."""
    from airflow_image_catalog.backends.base import JobStatus
    from airflow_image_catalog.backends.imaging import final_result

    records = {r["image_id"]: EditRecord(**r) for r in state["records"]}
    pending = dict(state["pending"])
    items = {item.image_id: item for item in run.chunk.items}
    submissions = _Submissions(run, pending)
    recipe, backend = run.recipe, run.backend

    async def one(key: str, result: dict[str, Any]) -> None:
        entry, record = pending.pop(key), records[key]
        status = JobStatus(**result)
        with _failing(record):
            if status.state != "ready":  # the job was billed at submit: booked; a dead job is not replayed
                billed = [backend.submit_usage(entry["job"])] if bills_at_submit(backend) else []
                await asyncio.to_thread(book, run, items[key], record.cache_key, billed, len(record.usage))
                record.usage += billed
                raise EditError(f"{backend.name} job {entry['job'].get('id')}: {status.message or status.code}",
                                retryable=status.retryable, code=status.code, job_lost=status.retryable)
            image, usage = await backend.acollect(entry["job"], status)
            await asyncio.to_thread(book, run, items[key], record.cache_key, [usage], len(record.usage))
            record.usage.append(usage)
            record.steps.append({"id": recipe.steps[entry["step"]].id, "model": backend.model,
                                 "job_id": entry["job"]["id"]})
            if entry["step"] + 1 < len(recipe.steps):
                await submissions.add(record, image, entry["step"] + 1, run.context(items[key]))
                return
            edited = await asyncio.to_thread(final_result, image, recipe, record.usage, record.steps)
            if run.cache and record.cache_key:
                await asyncio.to_thread(run.cache.put, record.cache_key, _cached(edited, recipe, run.run_facts()))
            await asyncio.to_thread(store_result, record, recipe, edited, run.output_root)
            record.finished_at = _now()
        if record.status != ImageStatus.SUBMITTED:
            await asyncio.to_thread(run.state.save, record)

    try:
        await asyncio.gather(*(one(key, result) for key, result in results.items() if key in pending))
        await submissions.flush()
    finally:
        await backend.transport.aclose()
    return {**state, "records": _records_dict(records), "pending": pending}


def finish_jobs(state: dict[str, Any], run: ChunkRun) -> EditManifest:
    records = [EditRecord(**r) for r in state["records"]]
    for record in records:
        _log_record(record)
    return new_manifest(run.chunk, run.recipe, run.backend, records)


