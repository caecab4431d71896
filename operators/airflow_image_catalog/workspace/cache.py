"""The content-addressed result cache: an edit already paid for is never paid for again.

The key is the sha256 of everything that determines an edit's output: the source bytes,
each step's mask and reference images (by content), the recipe's edit fingerprint (prompts,
operations, outputs, drift control) and the backend's identity (provider, model and the
settings that change pixels). A hit reuses the stored output and its usage record, and
costs nothing. Entries live in object storage under ``<workspace>/cache/<k[:2]>/<k>/``:
the image first, then ``meta.json``, which is the commit marker (a killed write leaves no
entry, only an orphan image a later write replaces).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from airflow_image_catalog.backends.base import EditResult
from airflow_image_catalog.storage import (
    StorageError,
    join_uri,
    read_bytes,
    read_json_if_exists,
    write_bytes,
    write_json,
)
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import sha256_hex

log = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1


def cache_key(
    *,
    source_sha256: str,
    recipe_fingerprint: str,
    backend: dict[str, Any],
    inputs: list[dict[str, Any]],
) -> str:
    """sha256 over a canonical JSON of what determines the output.

    :param inputs: per step, ``{"mask": <sha256 or "subject"/"background"/None>,
        "references": [<sha256>, ...]}`` resolved for this image.
    """
    canonical = json.dumps(
        {"v": CACHE_SCHEMA_VERSION, "source": source_sha256, "recipe": recipe_fingerprint,
         "backend": backend, "inputs": inputs},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(kw_only=True)
class CachedResult(EditResult):
    """A stored edit: the result as it was paid for, its file extension and sha256, and which run made it.

    ``attempts`` is not stored: serving from the cache makes no request.
    """

    extension: str
    sha256: str
    created_by: dict[str, Any] = field(default_factory=dict)


class ResultCache:
    """Edits by content address under ``<workspace>/cache``."""

    def __init__(self, workspace: str):
        self.root = WorkspaceLayout(workspace).cache

    def _entry(self, key: str) -> str:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key: {key!r}")
        return join_uri(self.root, key[:2], key)

    def get_meta(self, key: str) -> dict[str, Any] | None:
        """The entry's meta document (sizes, usage), or None: a cheap "is it cached?" for the cost check."""
        meta_uri = join_uri(self._entry(key), "meta.json")
        return read_json_if_exists(meta_uri)

    def get(self, key: str) -> CachedResult | None:
        """The stored edit, or None (missing, or its bytes no longer match: never serve a bad entry)."""
        meta = self.get_meta(key)
        if meta is None:
            return None
        data_uri = join_uri(self._entry(key), f"result.{meta['extension']}")
        try:
            data = read_bytes(data_uri)
        except StorageError:
            log.warning("cache entry %s has no image; treating as a miss", key)
            return None
        if sha256_hex(data) != meta["sha256"]:
            log.warning("cache entry %s is corrupt (sha256 differs); treating as a miss", key)
            return None
        return CachedResult(data=data, **{k: v for k, v in meta.items() if k not in ("schema_version", "key")})

    def put(self, key: str, result: CachedResult) -> str:
        """Store an edit; the meta document is written last and commits the entry."""
        entry = self._entry(key)
        write_bytes(join_uri(entry, f"result.{result.extension}"), result.data)
        meta = {k: v for k, v in result.__dict__.items() if k not in ("data", "attempts")}
        return write_json(join_uri(entry, "meta.json"), {"schema_version": CACHE_SCHEMA_VERSION, "key": key, **meta})
