"""The jobs path: provider jobs submitted, polled elsewhere (the triggerer, or this worker), collected.

Used by deferrable edits of asynchronous providers (BFL, Firefly) and by the OpenAI Batch API
(one batch per recipe step of a chunk). Per image it runs the same stages as the inline path
(:mod:`~airflow_image_catalog.pipeline.editing.stages`); only the *call* is split in two: submit
(:func:`start_jobs`, and :func:`advance_jobs` for a recipe's next step) and collect
(:func:`advance_jobs`). Every submission is recorded in the image's durable state (with its job id)
as soon as the provider answers, and the jobs manifest (``runs/<run>/jobs/chunk-NNNNN.json``) holds
the pending jobs before the task defers, so a timeout, a kill or a rerun collects a submitted job
instead of paying for it again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

from airflow_image_catalog.backends.base import (
    EditError,
    ImageContext,
    JobBackend,
    JobStatus,
    bills_at_submit,
    is_batch,
    is_jobs,
)
from airflow_image_catalog.backends.imaging import final_result
from airflow_image_catalog.pipeline.editing import stages
from airflow_image_catalog.pipeline.editing.calls import idempotency_base
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.storage import write_bytes
from airflow_image_catalog.workspace.manifest import (
    FINAL_STATUSES,
    EditManifest,
    EditRecord,
    ImageStatus,
    SourceItem,
    sha256_hex,
)


def job_backend(run: ChunkRun) -> JobBackend:
    """The run's backend as a job backend (the jobs path is only taken for those)."""
    backend = run.backend
    if not is_jobs(backend):
        raise TypeError(f"backend {backend.name} does not run provider jobs")
    return backend


class _Submissions:
    """The submit half of the *call* stage: submits recipe steps as jobs and records them as pending
    (in the jobs manifest and the state).

    Batch backends (the OpenAI Batch API) get every step queued by :meth:`add` in one call at
    :meth:`flush` (one batch); others submit at once.
    """

    def __init__(self, run: ChunkRun, pending: dict[str, Any], waiting: list[str]):
        self.run, self.backend, self.pending = run, job_backend(run), pending
        self.queued: list[tuple[EditRecord, bytes, int, ImageContext]] = []
        self.items = {item.image_id: item for item in run.chunk.items}
        self.waiting = waiting  # images whose first submit waits for a free job slot
        self.sending = 0  # first submits under way, not yet in ``pending``

    def free_slots(self) -> int | None:
        """Jobs the provider's jobs-in-flight limit still admits (None: no limit)."""
        limit = self.backend.jobs_in_flight
        return None if limit is None else limit - len(self.pending) - self.sending

    async def submit_first(self, record: EditRecord) -> None:
        """Settle the image for free, or submit its first step if a job slot is free (else it waits in
        ``waiting``); a final outcome (settled for free, failed before a job went out) is landed."""
        run, item = self.run, self.items[record.image_id]
        with stages.failing(record):
            source = await stages.settle_for_free(run, item, record)
            if source is not None:
                free = self.free_slots()
                if free is not None and free <= 0:  # checked and taken with no await in between
                    self.waiting.append(record.image_id)
                    return
                self.sending += 1
                try:
                    upload, context = await stages.prepare(run, item, record, source)
                    await self.add(record, upload, 0, context)
                finally:
                    self.sending -= 1
        if record.status in FINAL_STATUSES:
            await stages.land(run, record)

    async def submit_waiting(self, records: dict[str, EditRecord], deadline: float | None = None) -> None:
        """Submit waiting images into the free slots, again while a failed submit frees one.

        Past the chunk's job deadline none is submitted (a job the trigger would cancel at once is still
        paid for at BFL): they fail retryable, so a rerun redoes them.
        """
        if deadline is not None and time.time() >= deadline:
            for key in self.waiting:
                record = records[key]
                with stages.failing(record):
                    raise EditError(f"{self.backend.name}: not submitted before the chunk's job deadline "
                                    f"({len(self.waiting)} images waited for a job slot)", retryable=True,
                                    code="timeout")
                await stages.land(self.run, record)
            self.waiting.clear()
            return
        while self.waiting:
            free = self.free_slots()
            take = len(self.waiting) if free is None else min(free, len(self.waiting))
            if take <= 0:
                return
            batch, self.waiting[:] = self.waiting[:take], self.waiting[take:]
            await asyncio.gather(*(self.submit_first(records[key]) for key in batch))

    async def _book_possibly_billed(self, record: EditRecord, marks: list[dict[str, Any]]) -> None:
        """Submissions whose answer was lost after the body was sent: a job (a batch) may exist twice."""
        if marks:
            await asyncio.to_thread(stages.book, self.run, self.items[record.image_id], record.cache_key, [],
                                    possibly_billed=marks)

    def _record(self, record: EditRecord, job: dict[str, Any], image: bytes, step: int) -> None:
        record.job_id, record.status = job["id"], ImageStatus.SUBMITTED
        entry = {"step": step, "job": job}
        if step:
            entry["image_uri"] = write_bytes(self.run.layout.intermediate(record.image_id, step), image)
        self.pending[record.image_id] = entry
        self.run.state.save(record, pending_job=entry)

    async def add(self, record: EditRecord, image: bytes, step: int, context: ImageContext) -> None:
        from airflow_image_catalog.backends.http import idempotency_scope

        if is_batch(self.backend):
            self.queued.append((record, image, step, context))
            return
        with idempotency_scope(f"{idempotency_base(record.cache_key, record.lost_jobs)}-s{step}") as paid:
            try:
                job = await self.backend.asubmit(image, self.run.recipe, step, context)
            finally:
                await self._book_possibly_billed(record, paid.possibly_billed)
        await asyncio.to_thread(self._record, record, job, image, step)

    async def flush(self) -> None:
        from airflow_image_catalog.backends.http import idempotency_scope

        queued, self.queued = self.queued, []
        backend = self.backend
        if not queued or not is_batch(backend):
            return
        scope = sha256_hex("".join(f"{r.cache_key}:{step}" for r, _, step, _ in queued).encode())[:32]
        try:
            with idempotency_scope(scope) as paid:
                try:
                    jobs = await backend.asubmit_many(
                        [(r.image_id, image, step, ctx) for r, image, step, ctx in queued], self.run.recipe)
                finally:  # a batch created twice runs every line twice
                    for record, _, step, _ in queued:
                        await self._book_possibly_billed(record, [
                            {**mark, "step": self.run.recipe.steps[step].id, "batch": True}
                            for mark in paid.possibly_billed])
        except Exception as exc:  # the whole batch was refused: every image in it fails with the reason
            for record, *_ in queued:
                with stages.failing(record):
                    raise exc
                await stages.land(self.run, record)
            return
        for record, image, step, _ in queued:
            with stages.failing(record):
                self._record(record, jobs[record.image_id], image, step)
            if record.status != ImageStatus.SUBMITTED:
                await stages.land(self.run, record)


def _records_dict(records: dict[str, EditRecord]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records.values()]


async def start_jobs(run: ChunkRun) -> dict[str, Any]:
    """Submit the first recipe step of every image without a final result or a job already out.

    Returns the jobs manifest to persist. An image's earlier state decides (:func:`stages.resume`):
    a final result whose output is intact is kept, a recorded job is resumed (collected, never
    resubmitted), anything else is settled for free where it can be, else prepared and submitted.
    """
    earlier = await asyncio.to_thread(run.state.load)
    await asyncio.to_thread(run.state.start)
    pending: dict[str, Any] = {}
    records: dict[str, EditRecord] = {}
    submissions = _Submissions(run, pending, [])

    async def one(item: SourceItem) -> None:
        resumed = await stages.resume(run, item, earlier.get(item.image_id), collects_jobs=True)
        record = records[item.image_id] = resumed.record
        if resumed.kept:
            return
        if resumed.pending_job is not None:
            pending[item.image_id] = resumed.pending_job
            return
        await submissions.submit_first(record)

    try:
        await asyncio.gather(*(one(item) for item in run.chunk.items))
        await submissions.submit_waiting(records)
        await submissions.flush()
    finally:
        await submissions.backend.transport.aclose()
    return {"kind": "jobs", "run_key": run.chunk.run_key, "chunk_index": run.chunk.chunk_index,
            "records": _records_dict({i.image_id: records[i.image_id] for i in run.chunk.items}), "pending": pending,
            "waiting": submissions.waiting}


async def advance_jobs(state: dict[str, Any], results: dict[str, dict[str, Any]], run: ChunkRun) -> dict[str, Any]:
    """Apply a trigger's results: collect ready images (book, then submit the next step or land),
    record failures (a job billed at submit is booked all the same)."""
    records = {r["image_id"]: EditRecord(**r) for r in state["records"]}
    pending = dict(state["pending"])
    items = {item.image_id: item for item in run.chunk.items}
    submissions = _Submissions(run, pending, list(state.get("waiting", ())))
    recipe, backend = run.recipe, submissions.backend

    async def one(key: str, result: dict[str, Any]) -> None:
        entry, record, item = pending.pop(key), records[key], items[key]
        status = JobStatus(**result)
        with stages.failing(record):
            if status.state != "ready":  # a job billed at submit is booked; a dead job is not replayed
                billed = [backend.submit_usage(entry["job"])] if bills_at_submit(backend) else []
                await asyncio.to_thread(stages.book, run, item, record.cache_key, billed, len(record.usage))
                record.usage += billed
                raise EditError(f"{backend.name} job {entry['job'].get('id')}: {status.message or status.code}",
                                retryable=status.retryable, code=status.code, job_lost=status.retryable)
            image, usage = await backend.acollect(entry["job"], status)
            await asyncio.to_thread(stages.book, run, item, record.cache_key, [usage], len(record.usage))
            record.usage.append(usage)
            record.steps.append({"id": recipe.steps[entry["step"]].id, "model": backend.model,
                                 "job_id": entry["job"]["id"]})
            if entry["step"] + 1 < len(recipe.steps):
                await submissions.add(record, image, entry["step"] + 1, run.context(item))
                return
            edited = await asyncio.to_thread(final_result, image, recipe, record.usage, record.steps)
            await asyncio.to_thread(stages.land_result, run, record, edited)
        if record.status != ImageStatus.SUBMITTED:
            await stages.land(run, record)

    try:
        await asyncio.gather(*(one(key, result) for key, result in results.items() if key in pending))
        await submissions.submit_waiting(records, state.get("deadline"))  # the slots the ended jobs freed
        await submissions.flush()
    finally:
        await backend.transport.aclose()
    return {**state, "records": _records_dict(records), "pending": pending, "waiting": submissions.waiting}


def finish_jobs(state: dict[str, Any], run: ChunkRun) -> EditManifest:
    records = [EditRecord(**r) for r in state["records"]]
    for record in records:
        stages.log_record(record)
    return run.manifest(records)
