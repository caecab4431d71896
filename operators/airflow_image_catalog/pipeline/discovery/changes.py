"""Sensors, and the change detection they share with their triggers (plain Python, no Airflow import).

"New or changed" is decided against the *published* manifest, the catalog's current
state (``{"images": {id: {"source_uri", "source_bytes", "source_etag", ...}}}``), not
against the last run: a run that failed before publishing leaves its images new.
An object is new if no entry has its URI as ``source_uri``; changed if its size
differs from ``source_bytes``, or both have an ETag and they differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_image_catalog.storage import ObjectInfo, list_objects, normalize_uri, read_json, storage_for
from airflow_image_catalog.workspace.manifest import IMAGE_EXTENSIONS

#: how many URIs an event or XCom value carries (the count is always exact)
MAX_REPORTED_URIS = 100
#: ground-truth / edit masks stored beside the photos are not products
MASKS_PREFIX = "masks/"


def relative_key(obj: ObjectInfo, root: str) -> str:
    """The object's key below ``root`` (its name when ``root`` is the object itself)."""
    root = normalize_uri(root).rstrip("/")
    relative = obj.uri[len(root):].lstrip("/") if obj.uri.startswith(root) else ""
    relative = relative or obj.uri.rsplit("/", 1)[-1]
    return unquote(relative) if urlsplit(obj.uri).scheme == "file" else relative  # file URIs are %-encoded


def select(listing: Iterable[ObjectInfo], root: str, extensions: Iterable[str] | None = None,
           ignore_prefixes: Iterable[str] = ()) -> list[ObjectInfo]:
    """The listed objects with one of ``extensions`` (any, if None), outside ``ignore_prefixes``."""
    suffixes = None if extensions is None else {e.lower() for e in extensions}
    ignored = tuple(ignore_prefixes)
    kept = []
    for obj in listing:
        relative = relative_key(obj, root)
        if ignored and relative.startswith(ignored):
            continue
        if suffixes is None or PurePosixPath(relative).suffix.lower() in suffixes:
            kept.append(obj)
    return kept


def published_sources(published: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """``source_uri`` -> published (or finally refused) entry; ValueError for a manifest of the wrong shape."""
    if not published:
        return {}
    images = published.get("images") if isinstance(published, Mapping) else None
    if not isinstance(images, Mapping):
        raise ValueError("published manifest has no 'images' mapping")
    sources = {}
    # images refused for good (``failed_final``) are known too: the same bytes would be refused again
    known = [*(published.get("failed_final") or {}).items(), *images.items()]
    for image_id, entry in known:
        if not isinstance(entry, Mapping) or not entry.get("source_uri"):
            raise ValueError(f"published manifest entry {image_id!r} has no source_uri")
        sources[str(entry["source_uri"])] = entry
    return sources


def is_changed(obj: ObjectInfo, entry: Mapping[str, Any]) -> bool:
    size = entry.get("source_bytes")
    if size is not None and int(size) != obj.size:
        return True
    etag = entry.get("source_etag")
    return bool(etag and obj.etag and str(etag).strip('"') != obj.etag)


def new_or_changed(listing: Iterable[ObjectInfo], published: Mapping[str, Any] | None) -> list[ObjectInfo]:
    """The objects of ``listing`` that ``published`` does not hold, or holds with another size / ETag."""
    sources = published_sources(published)
    return [obj for obj in listing if obj.uri not in sources or is_changed(obj, sources[obj.uri])]


def load_published(uri: str | None) -> dict[str, Any]:
    """The published manifest; a missing one (the first run) is empty, so everything is new.

    Only a confirmed "does not exist" counts as empty: a failing check raises
    StorageError, so an outage never makes the whole catalog look new (and paid for again).
    """
    if not uri or not storage_for(uri).exists(uri):
        return {"images": {}}
    return read_json(uri)


def find_new_objects(source: str, published_manifest: str | None, extensions: Iterable[str] | None = None,
                     ignore_prefixes: Iterable[str] = ()) -> list[ObjectInfo]:
    """List ``source`` and compare it with the published manifest (blocking: call it off the event loop)."""
    published = load_published(published_manifest)
    return new_or_changed(select(list_objects(source), source, extensions, ignore_prefixes), published)


def image_extensions() -> list[str]:
    """The suffixes of product images (what discovery would pick up)."""
    return sorted(IMAGE_EXTENSIONS)


def find_new_images(source: str, published_manifest: str | None) -> dict[str, Any] | None:
    """The :func:`summary` of the product images under ``source`` that are new or changed, or None.

    Non-image files and anything under ``masks/`` are ignored; storage errors propagate.
    """
    found = find_new_objects(source, published_manifest, image_extensions(), [MASKS_PREFIX])
    return summary(found) if found else None


def summary(found: list[ObjectInfo], limit: int = MAX_REPORTED_URIS) -> dict[str, Any]:
    """A small, XCom-safe report: the exact count and the first ``limit`` URIs."""
    return {"count": len(found), "uris": [obj.uri for obj in found[:limit]], "truncated": len(found) > limit}
