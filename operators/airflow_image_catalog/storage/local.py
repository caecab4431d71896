"""``file://`` storage with atomic writes, so a killed task never leaves a half-written object."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_image_catalog.storage.base import BACKENDS, ObjectInfo, StorageError, normalize_uri


def uri_to_path(uri: str) -> Path:
    parts = urlsplit(normalize_uri(uri))
    if parts.scheme != "file":
        raise StorageError(f"not a file URI: {uri!r}")
    return Path(unquote(parts.path))


class LocalStorage:
    def read_bytes(self, uri: str) -> bytes:
        path = uri_to_path(uri)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc

    def write_bytes(self, uri: str, data: bytes) -> str:
        path = uri_to_path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from exc
        return path.as_uri()

    def exists(self, uri: str) -> bool:
        return uri_to_path(uri).is_file()

    def location_exists(self, prefix: str) -> bool:
        """Whether ``prefix`` is a folder or a file on this machine."""
        return uri_to_path(prefix).exists()

    def delete(self, uri: str) -> None:
        """Remove one file; a missing file is fine (idempotent, like S3's DeleteObject)."""
        try:
            uri_to_path(uri).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every regular file under ``prefix``, sorted, hidden files and temp files skipped."""
        root = uri_to_path(prefix)
        if not root.exists():
            raise StorageError(f"source location does not exist: {prefix}")
        if root.is_file():
            return [ObjectInfo(root.as_uri(), root.stat().st_size)]
        found = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if name.startswith(".") or not path.is_file() or path.is_symlink():
                    continue
                found.append(ObjectInfo(path.as_uri(), path.stat().st_size))
        return found


BACKENDS["file"] = LocalStorage
