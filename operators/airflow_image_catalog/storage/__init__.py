"""Object storage behind URIs, so no task depends on another task's local disk.

Every location the pipeline reads or writes (sources, outputs, manifests, reports)
is a URI. ``file://`` (or a plain absolute path) is the embedded default; other
schemes are added as backends register in :data:`BACKENDS`: ``s3://`` is always
registered, and imports boto3 only when first used.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_image_catalog.storage.base import (
    BACKENDS,
    ObjectInfo,
    Storage,
    StorageError,
    UnsupportedScheme,
    join_uri,
    normalize_uri,
    storage_for,
)
from airflow_image_catalog.storage.local import LocalStorage
from airflow_image_catalog.storage.s3 import S3Storage, S3StorageError

__all__ = [
    "BACKENDS",
    "LocalStorage",
    "ObjectInfo",
    "S3Storage",
    "S3StorageError",
    "Storage",
    "StorageError",
    "UnsupportedScheme",
    "join_uri",
    "normalize_uri",
    "delete",
    "exists",
    "read_bytes",
    "read_json",
    "read_json_if_exists",
    "write_bytes",
    "write_json",
    "list_objects",
    "storage_for",
    "location_exists",
]


def read_bytes(uri: str) -> bytes:
    return storage_for(uri).read_bytes(uri)


def write_bytes(uri: str, data: bytes) -> str:
    return storage_for(uri).write_bytes(uri, data)


def list_objects(prefix: str) -> list[ObjectInfo]:
    return storage_for(prefix).list(prefix)


def exists(uri: str) -> bool:
    return storage_for(uri).exists(uri)


def location_exists(prefix: str) -> bool:
    """Whether a location (a source folder or prefix) exists, without listing what is under it."""
    return storage_for(prefix).location_exists(prefix)


def delete(uri: str) -> None:
    """Remove one object; missing is fine."""
    storage_for(uri).delete(uri)


def read_json(uri: str):
    return json.loads(read_bytes(uri))


def read_json_if_exists(uri: str, default: Any = None) -> Any:
    """The JSON document at ``uri``, or ``default`` when there is none (yet): the manifests, decisions
    and indexes an earlier task or run may not have written."""
    return read_json(uri) if exists(uri) else default


def write_json(uri: str, payload) -> str:
    return write_bytes(uri, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())
