"""Manifests: the small JSON documents that travel between tasks instead of image bytes.

A *chunk manifest* lists the source images one mapped edit task handles; an
*edit manifest* records, per image, what happened to it (status, error, output,
hashes, timings, usage). XCom only ever carries the URIs of these files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Self

SCHEMA_VERSION = 1
#: .avif decodes where Pillow has AVIF (and is converted for providers); .heic/.heif are handed on so they
#: fail with a clear "not supported: convert" reason instead of being ignored without a word
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".avif",
                              ".heic", ".heif"})



class ImageStatus(StrEnum):
    """Per-image states, recorded durably before and after each paid call. No record = pending.

    The values are what manifests, state files, reports and audit records store (a ``StrEnum``
    serialises as its value, so those documents read the same as when these were plain strings).
    """

    PENDING = "pending"
    SUBMITTED = "submitted"  # a paid call (or job) is out; its key / job id is recorded
    EDITED = "edited"
    FAILED_RETRYABLE = "failed_retryable"  # a rerun may succeed (throttling, outage, timeout)
    FAILED_FINAL = "failed_final"  # the image or request itself is at fault; a rerun would fail again
    SKIPPED_BUDGET = "skipped_budget"  # not submitted: the run's budget was spent


#: the states a chunk manifest ends with; a rerun redoes every image not in DONE_STATUSES
FINAL_STATUSES = (ImageStatus.EDITED, ImageStatus.FAILED_RETRYABLE, ImageStatus.FAILED_FINAL,
                  ImageStatus.SKIPPED_BUDGET)
DONE_STATUSES = (ImageStatus.EDITED, ImageStatus.FAILED_FINAL)
FAILED_STATUSES = (ImageStatus.FAILED_RETRYABLE, ImageStatus.FAILED_FINAL)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_run_key(run_id: str) -> str:
    """Airflow run ids carry ':' and '+'; object keys should not."""
    return _UNSAFE.sub("_", run_id).strip("._") or "run"


def image_id_for(relative_key: str) -> str:
    """A stable, storage-safe id from a source key relative to the source root.

    Hostile keys (``..``, absolute paths, control characters, very long names)
    cannot escape the output location: every component is reduced to
    ``[A-Za-z0-9._-]`` and ``.``/``..`` components are dropped.
    """
    parts = []
    for component in relative_key.replace("\\", "/").split("/"):
        cleaned = _UNSAFE.sub("_", component).strip(" ")[:120]
        if cleaned and cleaned not in (".", ".."):
            parts.append(cleaned.lstrip(".") or "_")
    if not parts:
        return "image"
    stem, dot, _ext = parts[-1].rpartition(".")
    parts[-1] = stem if dot and stem else parts[-1]
    return "/".join(parts)


@dataclass
class SourceItem:
    image_id: str
    source_uri: str
    source_sha256: str
    bytes: int
    etag: str | None = None
    width: int | None = None  # from the header at discovery (None: unreadable); the cost check prices it
    height: int | None = None


@dataclass
class _ChunkDocument:
    """What the per-chunk manifests share: their run and chunk, a kind, a schema version, items.

    ``from_dict`` refuses another kind or schema version, and drops the keys ``to_dict`` derives
    (an edit manifest's ``counts``).
    """

    KIND: ClassVar[str]
    ITEM: ClassVar[type]
    DERIVED: ClassVar[tuple[str, ...]] = ()

    run_key: str
    chunk_index: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if data.get("kind") != cls.KIND:
            raise ValueError(f"expected a {cls.KIND} manifest, got kind={data.get('kind')!r}")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported {cls.KIND} manifest schema_version={data.get('schema_version')!r}")
        kept = {k: v for k, v in data.items() if k not in cls.DERIVED}
        return cls(**{**kept, "items": [cls.ITEM(**item) for item in data["items"]]})


@dataclass
class ChunkManifest(_ChunkDocument):
    KIND = "chunk"
    ITEM = SourceItem

    source_root: str
    items: list[SourceItem]
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION


@dataclass
class EditRecord:
    image_id: str
    source_uri: str
    source_sha256: str
    status: ImageStatus
    error: str | None = None
    output_uri: str | None = None
    output_sha256: str | None = None
    output_format: str | None = None
    width: int | None = None
    height: int | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    # provider errors: the provider's code, whether a rerun may succeed, HTTP attempts spent
    error_code: str | None = None
    retryable: bool | None = None
    attempts: int = 0
    job_id: str | None = None  # asynchronous providers: the (last) provider job id
    cache_key: str | None = None  # content address of (source, masks, references, recipe, backend)
    cache_hit: bool = False  # the output came from the result cache: nothing was paid this run
    rounds: list[dict[str, Any]] = field(default_factory=list)  # multi-round recipes: drift and decisions
    preparation: dict[str, Any] | None = None  # what was done to the upload (downscale, convert, strip)
    source_bytes: int | None = None
    source_etag: str | None = None
    edited_by: dict[str, Any] | None = None  # dag_id, run_id, task_id, map_index, try_number of the try that did it
    #: provider jobs that died without a result (lost, errored, stuck, expired): each starts a fresh
    #: idempotency scope, so a retry submits a new job instead of being replayed the dead one
    lost_jobs: int = 0
    #: a routed run's choice for the image (``pipeline.routing``): candidate, bucket, why, and ``attempts``, the
    #: chain of every edit tried (candidate, backend, model, status, cache key, gate verdict); None when not routed
    routing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status = ImageStatus(self.status)  # read back from JSON as its value

    @property
    def done(self) -> bool:
        """A final result this run need not redo (an edit, or a failure a rerun cannot fix)."""
        return self.status in DONE_STATUSES


@dataclass
class EditManifest(_ChunkDocument):
    KIND = "edit"
    ITEM = EditRecord
    DERIVED = ("counts",)

    recipe: dict[str, Any]
    backend: str
    model: str
    items: list[EditRecord]
    kind: str = KIND
    schema_version: int = SCHEMA_VERSION
    #: why the chunk's task failed (its failure policy), written with the manifest; publish reports it
    failure: str | None = None

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in FINAL_STATUSES}
        for item in self.items:
            counts[item.status.value] = counts.get(item.status.value, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts()}
