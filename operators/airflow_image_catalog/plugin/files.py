"""Which files the UI plugin may serve: only those under a configured storage root.

Every file link the plugin renders is ``<root name>/<relative path>``; the server maps it back with
:func:`resolve` and refuses anything that could leave the root: ``..`` or ``.`` segments (also when
percent-encoded, once or more), absolute paths, backslashes, hidden names, another root's name,
and, for ``file://`` roots, a symlink whose target lies outside the root. No Airflow import.

A run's *before* images need no configured root: ``run-source/<run key>/<image id>`` names an image by
id, and :func:`resolve_run_source` finds its source in that run's own chunk manifests (so only images
the run read are reachable, never another file beside them) and checks it against the run's source
root as :func:`resolve` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.storage import StorageError, join_uri, normalize_uri, read_json

_ROOT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
RUN_SOURCE = "run-source"  # the pseudo-root of the runs' before images (never a configured root's name)


class RefusedPath(CatalogError, ValueError):
    """A requested path that is not a file under a configured root (answered 404, never served)."""


@dataclass(frozen=True)
class StorageRoots:
    """Named storage roots (URIs) the plugin reads and serves files from.

    :param workspace: the catalog workspace (runs, quarantine, ledger, audit).
    :param published: the published catalog images.
    :param sources: extra read-only roots by name (e.g. ``{"source": "/photos/new"}``) so the
        review page can show an image before its edit.
    """

    workspace: str
    published: str
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.sources:
            if not _ROOT_NAME.fullmatch(name) or name in ("work", "published", RUN_SOURCE):
                raise ValueError(f"bad storage root name {name!r}")

    @property
    def roots(self) -> dict[str, str]:
        """Root name -> normalized URI (no trailing slash)."""
        named = {"work": self.workspace, "published": self.published, **self.sources}
        return {name: normalize_uri(uri).rstrip("/") for name, uri in named.items()}


def _clean_parts(relative: str) -> list[str]:
    """The path's segments after full percent-decoding; raise :class:`RefusedPath` on anything unsafe."""
    text = relative
    for _ in range(4):  # %252e%252e -> %2e%2e -> ..: decode until stable, then judge
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    else:
        raise RefusedPath("too many levels of percent-encoding")
    if not text or "\x00" in text or "\\" in text or text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text):
        raise RefusedPath(f"not a relative path: {relative!r}")
    parts = text.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise RefusedPath(f"path segment not allowed in {relative!r}")
    return parts


def _inside(base: str, uri: str, relative: str) -> None:
    """For ``file://``: ``uri`` exists, is a regular file, and its real path lies inside ``base``'s."""
    if urlsplit(base).scheme != "file":
        return
    from airflow_image_catalog.storage.local import uri_to_path

    root_path = uri_to_path(base).resolve()
    try:
        real = uri_to_path(uri).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RefusedPath(f"no such file: {relative!r}") from exc
    if not real.is_relative_to(root_path) or not real.is_file():
        raise RefusedPath(f"outside its storage root: {relative!r}")


def resolve(roots: StorageRoots, root_name: str, relative: str) -> str:
    """The URI of ``relative`` under the root called ``root_name``, or :class:`RefusedPath`.

    For ``file://`` roots the file must exist, be a regular file, and its real path (symlinks
    followed) must still lie inside the root's real path.
    """
    base = roots.roots.get(root_name)
    if base is None:
        raise RefusedPath(f"unknown storage root {root_name!r}")
    parts = _clean_parts(relative)
    uri = join_uri(base, *parts)
    _inside(base, uri, relative)
    return uri


@lru_cache(maxsize=64)
def _run_sources(workspace: str, run_key: str) -> dict[str, tuple[str, str]]:
    """image id -> (source URI, source root) from a run's chunk manifests (written once, never changed)."""
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    run = WorkspaceLayout(workspace).run(run_key)
    found: dict[str, tuple[str, str]] = {}
    for uri in read_json(run.discovery).get("chunks") or []:
        if not normalize_uri(uri).startswith(run.root.rstrip("/") + "/"):
            continue  # a manifest outside the run: not this run's word
        chunk = read_json(uri)
        for item in chunk.get("items") or []:
            found[str(item["image_id"])] = (str(item["source_uri"]), str(chunk["source_root"]))
    return found


def resolve_run_source(workspace: str, run_key: str, image_id: str) -> str:
    """The source URI of ``image_id`` as run ``run_key`` read it, or :class:`RefusedPath`."""
    from airflow_image_catalog.workspace.manifest import safe_run_key

    if not run_key or safe_run_key(run_key) != run_key or "/" in image_id or not _clean_parts(image_id):
        raise RefusedPath(f"not a run image: {run_key!r}/{image_id!r}")
    try:
        source_uri, source_root = _run_sources(normalize_uri(workspace).rstrip("/"), run_key)[image_id]
    except (KeyError, StorageError, OSError, ValueError) as exc:
        raise RefusedPath(f"run {run_key!r} read no image {image_id!r}") from exc
    root = normalize_uri(source_root).rstrip("/")
    if not normalize_uri(source_uri).startswith(root + "/"):
        raise RefusedPath(f"{image_id!r} is not under its run's source root")
    _inside(root, source_uri, image_id)
    return source_uri


def locate(roots: StorageRoots, uri: str | None) -> tuple[str, str] | None:
    """(root name, relative path) of a URI under one of the roots (the deepest match), else None."""
    if not uri:
        return None
    target = normalize_uri(uri)
    for name, base in sorted(roots.roots.items(), key=lambda kv: -len(kv[1])):
        if target.startswith(base + "/"):
            relative = unquote(target[len(base) + 1:])
            try:
                _clean_parts(relative)
            except RefusedPath:
                return None
            return name, relative
    return None


def run_source_href(run_key: str | None, image_id: str | None, prefix: str) -> str | None:
    """The plugin URL of an image as its run read it (see :func:`resolve_run_source`)."""
    if not run_key or not image_id:
        return None
    return f"{prefix}/files/{RUN_SOURCE}/{quote(run_key, safe='')}/{quote(image_id, safe='')}"


def file_href(roots: StorageRoots, uri: str | None, prefix: str) -> str | None:
    """The plugin URL serving ``uri`` (``<prefix>/files/<root>/<path>``), or None outside every root."""
    found = locate(roots, uri)
    if found is None:
        return None
    return f"{prefix}/files/{found[0]}/{quote(found[1])}"


MEDIA_TYPES = {"html": "text/html; charset=utf-8", "json": "application/json", "jpg": "image/jpeg",
               "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
               "tif": "image/tiff", "tiff": "image/tiff", "css": "text/css", "js": "text/javascript",
               "svg": "image/svg+xml", "csv": "text/csv"}


def media_type(uri: str) -> str:
    """Content type by extension; unknown types are served as downloads (octet-stream)."""
    return MEDIA_TYPES.get(uri.rsplit(".", 1)[-1].lower(), "application/octet-stream")
