"""``file://`` storage with atomic writes, so a killed task never leaves a half-written object.

A file is written to a private temporary file (``mkstemp``: mode 0600) and renamed into place, so
nobody reads it half-written; just before the rename it gets the mode ``open()`` would have given
it (0666 minus the process umask), so a published catalog is readable by a web server or another
user exactly as far as the umask allows.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_image_catalog.storage.base import BACKENDS, ObjectInfo, StorageError, normalize_uri

_UMASK_LINE = re.compile(rb"^Umask:\s*([0-7]+)$", re.MULTILINE)
_umask_lock = threading.Lock()


def process_umask() -> int:
    """The process umask, read without changing it where the kernel says it (``/proc/self/status``,
    Linux 4.7+); elsewhere set and restored under a lock (``os.umask`` is the only other way to ask)."""
    try:
        found = _UMASK_LINE.search(Path("/proc/self/status").read_bytes())
    except OSError:
        found = None
    if found:
        return int(found.group(1), 8)
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


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
                    os.fchmod(handle.fileno(), 0o666 & ~process_umask())
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
