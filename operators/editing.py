"""Edit one chunk of images through a backend; every image ends with a recorded status.

A bad image (corrupt, truncated, unsupported, huge, missing mask) fails alone with
a clear reason; the rest of the chunk goes on.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from operators.backends.base import EditBackend, EditError, ImageContext
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


def edit_image(
    item: SourceItem, recipe: Recipe, backend: EditBackend, *, source_root: str, output_root: str, cache: dict
) -> EditRecord:
    record = EditRecord(item.image_id, item.source_uri, item.source_sha256, STATUS_FAILED, started_at=_now())
    started = time.perf_counter()
    try:
        source = read_bytes(item.source_uri)
        if sha256_hex(source) != item.source_sha256:
            raise EditError("source changed since discovery (sha256 differs); it will be picked up next run")
        context = ImageContext(item.image_id, source_root, recipe.recipe_dir, cache=cache)
        result = backend.edit(source, recipe, context)
        output_uri = join_uri(output_root, f"{item.image_id}.{recipe.step_output(recipe.steps[-1]).extension}")
        record.output_uri = write_bytes(output_uri, result.data)
        record.output_sha256 = sha256_hex(result.data)
        record.output_format = result.format
        record.width, record.height = result.width, result.height
        record.steps, record.usage = result.steps, result.usage
        record.status = STATUS_EDITED
    except (Exception, MemoryError) as exc:  # one image must never sink its chunk
        expected = _is_expected(exc)
        record.error = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        log.warning("image %s failed: %s", item.image_id, record.error, exc_info=not expected)
    record.finished_at = _now()
    record.seconds = round(time.perf_counter() - started, 4)
    return record


def edit_chunk(chunk: ChunkManifest, recipe: Recipe, backend: EditBackend, *, output_root: str) -> EditManifest:
    """Edit every image of ``chunk``; outputs go under ``output_root``, named by image id."""
    cache: dict[str, bytes] = {}
    records = []
    for item in chunk.items:
        record = edit_image(
            item, recipe, backend, source_root=chunk.source_root, output_root=output_root, cache=cache
        )
        log.info("%s %s (%.2fs)%s", record.status, item.image_id, record.seconds,
                 f": {record.error}" if record.error else "")
        records.append(record)
    return EditManifest(
        run_key=chunk.run_key,
        chunk_index=chunk.chunk_index,
        recipe={"name": recipe.name, "fingerprint": recipe.fingerprint, "origin": recipe.origin},
        backend=backend.name,
        model=backend.model,
        items=records,
    )
