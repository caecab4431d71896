"""Edit one chunk of images through a backend; every image ends with a recorded status.

A bad image (corrupt, truncated, unsupported, huge, missing mask) fails alone with
a clear reason; the rest of the chunk goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from operators.backends.base import EditBackend, EditError, EditResult, ImageContext
from operators.backends.imaging import preflight
from operators.manifest import (
    STATUS_EDITED,
    STATUS_FAILED,
    ChunkManifest,
    EditManifest,
    EditRecord,
    SourceItem,
    sha256_hex,
)
from operators.recipes import Recipe
from operators.storage import StorageError, join_uri, read_bytes, write_bytes

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _is_expected(exc: BaseException) -> bool:
    """Errors about the image or its inputs, as opposed to bugs worth a traceback."""
    from operators.engine import EngineError

    return isinstance(exc, EngineError | EditError | StorageError)


@contextmanager
def _failing(record: EditRecord) -> Iterator[EditRecord]:
    """Any error inside ends ``record`` ``failed`` with its reason, the provider's code and retryability."""
    try:
        yield record
    except (Exception, MemoryError) as exc:  # one image must never sink its chunk
        expected = _is_expected(exc)
        record.status = STATUS_FAILED
        record.error = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, EditError):
            record.error_code, record.retryable = exc.code, exc.retryable
            record.attempts = exc.attempts or record.attempts
        log.warning("image %s failed: %s", record.image_id, record.error, exc_info=not expected)
        record.finished_at = record.finished_at or _now()


@contextmanager
def _recording(item: SourceItem) -> Iterator[EditRecord]:
    """A record for one image, timed; any error inside ends it ``failed`` (see :func:`_failing`)."""
    record = EditRecord(item.image_id, item.source_uri, item.source_sha256, STATUS_FAILED, started_at=_now())
    started = time.perf_counter()
    with _failing(record):
        yield record
    record.finished_at = _now()
    record.seconds = round(time.perf_counter() - started, 4)


def read_source(item: SourceItem) -> bytes:
    source = read_bytes(item.source_uri)
    if sha256_hex(source) != item.source_sha256:
        raise EditError("source changed since discovery (sha256 differs); it will be picked up next run")
    return source


def store_result(record: EditRecord, recipe: Recipe, result: EditResult, output_root: str) -> None:
    """Write an edited image and fill its record (status ``edited``)."""
    output_uri = join_uri(output_root, f"{record.image_id}.{recipe.step_output(recipe.steps[-1]).extension}")
    record.output_uri = write_bytes(output_uri, result.data)
    record.output_sha256 = sha256_hex(result.data)
    record.output_format = result.format
    record.width, record.height = result.width, result.height
    record.steps, record.usage, record.attempts = result.steps, result.usage, result.attempts
    record.status = STATUS_EDITED


def edit_image(
    item: SourceItem, recipe: Recipe, backend: EditBackend, *, source_root: str, output_root: str, cache: dict
) -> EditRecord:
    with _recording(item) as record:
        source = read_source(item)
        context = ImageContext(item.image_id, source_root, recipe.recipe_dir, cache=cache)
        store_result(record, recipe, backend.edit(source, recipe, context), output_root)
    return record


async def aedit_image(
    item: SourceItem, recipe: Recipe, backend: Any, *, source_root: str, output_root: str, cache: dict
) -> EditRecord:
    """:func:`edit_image` through the backend's ``aedit`` (its limiter bounds the concurrency)."""
    with _recording(item) as record:
        source = read_source(item)
        context = ImageContext(item.image_id, source_root, recipe.recipe_dir, cache=cache)
        store_result(record, recipe, await backend.aedit(source, recipe, context), output_root)
    return record


def _log_record(record: EditRecord) -> None:
    log.info("%s %s (%.2fs)%s", record.status, record.image_id, record.seconds or 0.0,
             f": {record.error}" if record.error else "")


async def _aedit_all(chunk: ChunkManifest, recipe: Recipe, backend: Any, output_root: str) -> list[EditRecord]:
    cache: dict[str, bytes] = {}
    try:
        records = await asyncio.gather(*(
            aedit_image(item, recipe, backend, source_root=chunk.source_root, output_root=output_root, cache=cache)
            for item in chunk.items
        ))
    finally:
        await backend.transport.aclose()
    for record in records:
        _log_record(record)
    return list(records)


def new_manifest(chunk: ChunkManifest, recipe: Recipe, backend: EditBackend, records: list[EditRecord]) -> EditManifest:
    return EditManifest(
        run_key=chunk.run_key,
        chunk_index=chunk.chunk_index,
        recipe={"name": recipe.name, "fingerprint": recipe.fingerprint, "origin": recipe.origin},
        backend=backend.name,
        model=backend.model,
        items=records,
    )


def edit_chunk(chunk: ChunkManifest, recipe: Recipe, backend: EditBackend, *, output_root: str) -> EditManifest:
    """Edit every image of ``chunk``; outputs go under ``output_root``, named by image id.

    Backends with an async ``aedit`` edit the chunk's images concurrently (bounded by
    their limiter); others one after the other.
    """
    if hasattr(backend, "aedit"):
        return new_manifest(chunk, recipe, backend, asyncio.run(_aedit_all(chunk, recipe, backend, output_root)))
    cache: dict[str, bytes] = {}
    records = []
    for item in chunk.items:
        record = edit_image(
            item, recipe, backend, source_root=chunk.source_root, output_root=output_root, cache=cache
        )
        _log_record(record)
        records.append(record)
    return new_manifest(chunk, recipe, backend, records)


# -- asynchronous providers, deferrable: submit -> (trigger polls) -> collect -> next step ------
# The jobs manifest (``runs/<run>/jobs/chunk-NNNNN.json``) records every image's record so
# far and its pending job id *before* the task defers, so a timeout, a kill or a rerun never
# loses (or pays twice for) a job that was submitted.


def _source_context(record: EditRecord, chunk: ChunkManifest, recipe: Recipe, cache: dict) -> ImageContext:
    return ImageContext(record.image_id, chunk.source_root, recipe.recipe_dir, cache=cache)


class _Submissions:
    """Submits recipe steps as jobs and records them as pending.

    Backends with ``asubmit_many`` (the OpenAI Batch API) get every step queued by
    :meth:`add` in one call at :meth:`flush` (one batch); others submit at once.
    """

    def __init__(self, backend: Any, recipe: Recipe, pending: dict[str, Any], run_root: str):
        self.backend, self.recipe, self.pending, self.run_root = backend, recipe, pending, run_root
        self.queued: list[tuple[EditRecord, bytes, int, ImageContext]] = []

    def _record(self, record: EditRecord, job: dict[str, Any], image: bytes, step: int) -> None:
        record.job_id = job["id"]
        entry = {"step": step, "job": job}
        if step:
            uri = join_uri(self.run_root, "intermediate", f"{record.image_id}.step{step}")
            entry["image_uri"] = write_bytes(uri, image)
        self.pending[record.image_id] = entry

    async def add(self, record: EditRecord, image: bytes, step: int, context: ImageContext) -> None:
        if hasattr(self.backend, "asubmit_many"):
            self.queued.append((record, image, step, context))
            return
        self._record(record, await self.backend.asubmit(image, self.recipe, step, context), image, step)

    async def flush(self) -> None:
        queued, self.queued = self.queued, []
        if not queued:
            return
        try:
            jobs = await self.backend.asubmit_many([(r.image_id, image, step, ctx) for r, image, step, ctx in queued],
                                                   self.recipe)
        except Exception as exc:  # the whole batch was refused: every image in it fails with the reason
            for record, *_ in queued:
                with _failing(record):
                    raise exc
            return
        for record, image, step, _ in queued:
            with _failing(record):
                self._record(record, jobs[record.image_id], image, step)


async def start_jobs(chunk: ChunkManifest, recipe: Recipe, backend: Any, *, run_root: str) -> dict[str, Any]:
    """Submit the first recipe step of every image; returns the jobs manifest to persist."""
    cache: dict[str, bytes] = {}
    pending: dict[str, Any] = {}
    records = {item.image_id: EditRecord(item.image_id, item.source_uri, item.source_sha256, STATUS_FAILED,
                                         started_at=_now()) for item in chunk.items}

    submissions = _Submissions(backend, recipe, pending, run_root)

    async def one(item: SourceItem) -> None:
        record = records[item.image_id]
        with _failing(record):
            source = read_source(item)
            preflight(source)  # before a job is paid for
            await submissions.add(record, source, 0, _source_context(record, chunk, recipe, cache))

    try:
        await asyncio.gather(*(one(item) for item in chunk.items))
        await submissions.flush()
    finally:
        await backend.transport.aclose()
    return {"kind": "jobs", "run_key": chunk.run_key, "chunk_index": chunk.chunk_index,
            "records": [asdict(r) for r in records.values()], "pending": pending}


async def advance_jobs(state: dict[str, Any], results: dict[str, dict[str, Any]], chunk: ChunkManifest,
                       recipe: Recipe, backend: Any, *, run_root: str) -> dict[str, Any]:
    """Apply a trigger's results: download ready images (at once), submit next steps, record failures."""
    from operators.backends.base import JobStatus
    from operators.backends.imaging import conform

    records = {r["image_id"]: EditRecord(**r) for r in state["records"]}
    pending = dict(state["pending"])
    cache: dict[str, bytes] = {}
    output_root = join_uri(run_root, "outputs")
    submissions = _Submissions(backend, recipe, pending, run_root)

    async def one(key: str, result: dict[str, Any]) -> None:
        entry, record = pending.pop(key), records[key]
        status = JobStatus(**result)
        with _failing(record):
            if status.state != "ready":
                raise EditError(f"{backend.name} job {entry['job'].get('id')}: {status.message or status.code}",
                                retryable=status.retryable, code=status.code)
            image, usage = await backend.acollect(entry["job"], status)
            record.usage.append(usage)
            record.steps.append({"id": recipe.steps[entry["step"]].id, "model": backend.model,
                                 "job_id": entry["job"]["id"]})
            if entry["step"] + 1 < len(recipe.steps):
                context = _source_context(record, chunk, recipe, cache)
                await submissions.add(record, image, entry["step"] + 1, context)
                return
            output = recipe.step_output(recipe.steps[-1])
            data, width, height = conform(image, output)
            store_result(record, recipe, EditResult(data, output.format, width, height, usage=record.usage,
                                                    steps=record.steps), output_root)
            record.finished_at = _now()

    try:
        await asyncio.gather(*(one(key, result) for key, result in results.items() if key in pending))
        await submissions.flush()
    finally:
        await backend.transport.aclose()
    return {**state, "records": [asdict(r) for r in records.values()], "pending": pending}


def finish_jobs(state: dict[str, Any], chunk: ChunkManifest, recipe: Recipe, backend: Any) -> EditManifest:
    records = [EditRecord(**r) for r in state["records"]]
    for record in records:
        _log_record(record)
    return new_manifest(chunk, recipe, backend, records)
