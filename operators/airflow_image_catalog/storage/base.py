"""The storage interface and URI helpers shared by every backend."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from airflow_image_catalog.exceptions import CatalogError


class StorageError(CatalogError, OSError):
    """A read, write or listing failed; the message names the URI."""


class UnsupportedScheme(StorageError):
    """No storage backend handles the URI's scheme (``gs://`` where only ``file`` and ``s3`` exist)."""

    def __init__(self, message: str, scheme: str, known: tuple[str, ...]):
        super().__init__(message)
        self.scheme = scheme
        self.known = known

    def __reduce__(self):
        return type(self), (str(self), self.scheme, self.known)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object. ``etag`` (quotes stripped) is filled by backends that have one (S3)."""

    uri: str
    size: int
    etag: str | None = None


class Storage(Protocol):
    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> str: ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix: str) -> list[ObjectInfo]: ...

    def location_exists(self, prefix: str) -> bool: ...

    def delete(self, uri: str) -> None:
        """Remove one object; a missing object is not an error (reruns delete twice)."""
        ...


#: scheme -> factory; ``file`` is always present, other schemes register themselves.
BACKENDS: dict[str, type] = {}


def normalize_uri(location: str | Path) -> str:
    """Turn a plain path into a ``file://`` URI; leave other URIs alone.

    ``file://`` URIs are percent-encoded (``Path.as_uri``); ``s3://`` URIs carry the
    key as it is (spaces, unicode), so ``uri[len(root):]`` of a listed object is its key
    relative to ``root``.
    """
    text = str(location)
    scheme = urlsplit(text).scheme
    if scheme and len(scheme) > 1:  # len 1 would be a Windows drive letter
        return text
    return Path(text).expanduser().resolve().as_uri()


def join_uri(base: str, *parts: str) -> str:
    """Join key parts onto a URI, refusing parts that would escape the base."""
    base = normalize_uri(base).rstrip("/")
    for part in parts:
        if ".." in str(part).split("/"):
            raise StorageError(f"refusing path component '..' in {part!r}")
    joined = posixpath.join(*[str(p).strip("/") for p in parts if str(p).strip("/")]) if parts else ""
    return f"{base}/{joined}" if joined else base


def storage_for(uri: str) -> Storage:
    scheme = urlsplit(normalize_uri(uri)).scheme
    try:
        factory = BACKENDS[scheme]
    except KeyError:
        known = tuple(sorted(BACKENDS))
        raise UnsupportedScheme(f"no storage backend for scheme {scheme!r} in {uri!r} (known: {', '.join(known)})",
                                scheme, known) from None
    return factory()
