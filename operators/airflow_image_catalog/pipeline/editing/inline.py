"""The inline path: each image's recipe called at once, images concurrently (bounded).

Per image (the stages of :mod:`~airflow_image_catalog.pipeline.editing.stages`): a final result
from an earlier try is kept; a cache hit or a spent budget settles it for free; otherwise the
upload is prepared, the state ``submitted`` is written, the recipe is called (its requests carry
idempotency keys derived from the cache key), the paid calls are booked, and the result lands in
the cache, the run's outputs and the state (``edited``), or the failure is recorded
(``failed_retryable`` / ``failed_final``). A bad image fails alone; the chunk goes on. Images run
concurrently, bounded by ``concurrency`` (and each backend's own limiter).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow_image_catalog.backends.base import EditBackend, EditError, is_async
from airflow_image_catalog.pipeline.editing import stages
from airflow_image_catalog.pipeline.editing.calls import run_recipe
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.recipes import Recipe
from airflow_image_catalog.workspace.manifest import (
    ChunkManifest,
    EditManifest,
    EditRecord,
    ImageStatus,
    SourceItem,
)


async def edit_one(run: ChunkRun, item: SourceItem, earlier: dict[str, Any] | None) -> EditRecord:
    """One image, from its earlier state (if any) to a final recorded state."""
    resumed = await stages.resume(run, item, earlier, collects_jobs=False)
    if resumed.kept:
        return resumed.record
    record = resumed.record
    started = time.perf_counter()
    with stages.failing(record):
        source = await stages.settle_for_free(run, item, record)
        if source is not None:
            key = record.cache_key
            upload, context = await stages.prepare(run, item, record, source)
            record.status = ImageStatus.SUBMITTED
            await asyncio.to_thread(run.state.save, record)  # durable before the paid call
            try:
                result = await run_recipe(run.backend, upload, run.recipe, context, key, record.lost_jobs)
            except EditError as exc:  # calls billed before the failure are booked all the same
                record.usage = list(exc.usage)
                await asyncio.to_thread(stages.book, run, item, key, exc.usage, possibly_billed=exc.possibly_billed)
                raise
            # before anything else: never unbooked
            await asyncio.to_thread(stages.book, run, item, key, result.usage, possibly_billed=result.possibly_billed)
            await asyncio.to_thread(stages.land_result, run, record, result)
    return await stages.land(run, record, started)


async def aedit_chunk(run: ChunkRun) -> list[EditRecord]:
    """Every image of the chunk, concurrently up to ``run.concurrency``; one record each, in order."""
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
        stages.log_record(record)
    return list(records)


def edit_chunk(chunk: ChunkManifest, recipe: Recipe, backend: EditBackend, *, run_root: str,
               workspace: str | None = None, concurrency: int | None = None) -> EditManifest:
    """Edit every image of ``chunk``; outputs go under ``run_root/outputs``, named by image id.

    Rerunning with the same ``run_root`` keeps every image already final; ``workspace``
    enables the result cache shared by every run.
    """
    run = ChunkRun(chunk, recipe, backend, run_root, workspace, concurrency)
    return run.manifest(asyncio.run(aedit_chunk(run)))
