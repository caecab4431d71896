"""Find the source images of a run and split them into chunk manifests.

Tasks are mapped over chunks, not images: Airflow caps a mapped task at 1,024
instances, and each task instance costs scheduling time.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

from airflow_image_catalog.pipeline.discovery.chunking import MAX_MAPPED_CHUNKS, auto_chunk_size
from airflow_image_catalog.recipes import load_recipe, manifest_entry
from airflow_image_catalog.storage import (
    list_objects,
    normalize_uri,
    read_bytes,
    read_json,
    read_json_if_exists,
    storage_for,
    write_json,
)
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
from airflow_image_catalog.workspace.manifest import (
    IMAGE_EXTENSIONS,
    ChunkManifest,
    SourceItem,
    image_id_for,
    sha256_hex,
)

log = logging.getLogger(__name__)


@dataclass
class Discovery:
    source_root: str
    items: list[SourceItem]
    ignored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # image ids already published from these bytes
    refused: list[str] = field(default_factory=list)  # image ids that failed finally from these bytes

    def chunks(self, chunk_size: int) -> list[list[SourceItem]]:
        return [self.items[i : i + chunk_size] for i in range(0, len(self.items), chunk_size)]


def header_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height from the image header (no pixel decode); (None, None) when unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # an unreadable upload fails at edit time with its reason, free
        return None, None


def is_unchanged(item: SourceItem, before: dict[str, Any] | None, recipe_fingerprint: str | None) -> bool:
    """``before`` (a published or refused entry) came from the same bytes and recipe: redoing it changes nothing."""
    if not before:
        return False
    same_recipe = recipe_fingerprint is None or before.get("recipe_fingerprint") == recipe_fingerprint
    return before.get("source_sha256") == item.source_sha256 and same_recipe


def discover_images(
    source: str,
    *,
    published: dict[str, dict[str, Any]] | None = None,
    recipe_fingerprint: str | None = None,
    refused: dict[str, dict[str, Any]] | None = None,
) -> Discovery:
    """List ``source``, keep image files by extension, hash them, give each a unique image id.

    With ``published`` (the published manifest's ``images``), images already published from
    the same bytes and recipe are left out (``unchanged``), and so are those in ``refused``
    (its ``failed_final``: they failed for good with the same bytes and recipe): refreshing
    an unchanged catalog hands nothing on, makes no edit call and costs nothing.
    """
    root = normalize_uri(source).rstrip("/")
    items: list[SourceItem] = []
    ignored: list[str] = []
    unchanged: list[str] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for obj in list_objects(root):
        relative = unquote(obj.uri[len(root) :].lstrip("/")) or unquote(obj.uri.rsplit("/", 1)[-1])
        suffix = PurePosixPath(relative).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS or relative.startswith("masks/"):
            ignored.append(relative)
            continue
        image_id = image_id_for(relative)
        if image_id in taken:  # e.g. mug.jpg and mug.png side by side
            image_id = f"{image_id}-{suffix.lstrip('.')}"
        if image_id in taken:  # names that reduce to the same id (e.g. two non-ASCII names): keep both
            image_id = f"{image_id}-{sha256_hex(relative.encode())[:8]}"
        taken.add(image_id)
        data = read_bytes(obj.uri)
        item = SourceItem(image_id, obj.uri, sha256_hex(data), len(data), obj.etag, *header_size(data))
        if is_unchanged(item, (published or {}).get(image_id), recipe_fingerprint):
            unchanged.append(image_id)
        elif is_unchanged(item, (refused or {}).get(image_id), recipe_fingerprint):
            skipped.append(image_id)
        else:
            items.append(item)
    return Discovery(root, items, ignored, unchanged, skipped)


def write_chunk_manifests(discovery: Discovery, *, run_root: str, run_key: str, chunk_size: int) -> list[str]:
    """Write one chunk manifest per ``chunk_size`` images; return their URIs (the XCom payload)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunks = discovery.chunks(chunk_size)
    if len(chunks) > MAX_MAPPED_CHUNKS:
        raise ValueError(
            f"{len(discovery.items)} images in chunks of {chunk_size} make {len(chunks)} mapped tasks, "
            f"over Airflow's limit of {MAX_MAPPED_CHUNKS}: raise chunk_size"
        )
    uris = []
    for index, items in enumerate(chunks):
        manifest = ChunkManifest(run_key, index, discovery.source_root, items)
        uris.append(write_json(RunLayout(run_root).chunk(index), manifest.to_dict()))
    return uris


@dataclass
class RunDiscovery:
    """A run's discovery summary (``runs/<run>/discovery.json``) and whether an earlier try wrote it."""

    summary: dict[str, Any]
    reused: bool

    @property
    def chunk_uris(self) -> list[str]:
        return list(self.summary["chunks"])


def discover_run(source: str, *, workspace: str, run_root: str, run_key: str, chunk_size: int | None,
                 recipe: str | None = None, only_changed: bool = True, slots: int = 1) -> RunDiscovery:
    """Discover a run's images and write its chunk manifests, once per run.

    A rerun of the same run reuses the first try's ``discovery.json``, so every chunk (and its
    recorded per-image state) means the same images on every try. With ``only_changed``, images
    published (or refused for good) from the same bytes and ``recipe`` (a shipped name or a
    file; None: any recipe) are left out. ``chunk_size`` None: chunks that fill ``slots`` edit
    task slots in whole waves (:func:`~airflow_image_catalog.pipeline.discovery.chunking.auto_chunk_size`).
    """
    summary_uri = RunLayout(run_root).discovery
    if storage_for(summary_uri).exists(summary_uri):  # a rerun of this run: the same images, the same chunks
        return RunDiscovery(read_json(summary_uri), reused=True)
    state: dict = {}
    if only_changed:
        uri = WorkspaceLayout(workspace).published_manifest
        state = read_json_if_exists(uri, {})
    applied = load_recipe(recipe) if recipe else None
    fingerprint = applied.fingerprint if applied else None
    discovery = discover_images(source, published=state.get("images"), recipe_fingerprint=fingerprint,
                                refused=state.get("failed_final"))
    size = chunk_size or auto_chunk_size(len(discovery.items), slots)
    chunk_uris = write_chunk_manifests(discovery, run_root=run_root, run_key=run_key, chunk_size=size)
    summary = {
        "source_root": discovery.source_root,
        "images": len(discovery.items),
        "chunk_size": size,
        "chunk_size_from": "param" if chunk_size else f"{slots} edit slots",
        "unchanged": len(discovery.unchanged),
        "refused_before": discovery.refused,
        "ignored": discovery.ignored,
        "chunks": chunk_uris,
        "recipe": manifest_entry(applied) if applied else None,  # the report names it when nothing changed
    }
    write_json(summary_uri, summary)  # last: it commits the run's discovery
    return RunDiscovery(summary, reused=False)
