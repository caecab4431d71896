"""The secrets scan: after runs with keys on every backend connection, look for the keys everywhere
a run leaves something behind.

Searched, as text: every file under the Airflow home (task logs, the OpenLineage file transport's
events, the SQLite metadata DB byte for byte: XCom, trigger kwargs, rendered fields, task
instances), every object under the run's workspace and published locations (manifests,
per-image state, jobs manifests, the ledger, reports, the audit Parquet read back as rows, since
Parquet compresses its strings), and any extra text handed in (captured task output). Keys are
matched literally, and also base64-encoded and URL-quoted, so an encoded leak counts too.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

#: the backends a connection can name (each gets its own key during the scan runs)
BACKENDS = ("openai", "openai_batch", "bfl", "firefly", "recraft")


@dataclass(frozen=True)
class Hit:
    """One key found: where, and which encoding of it."""

    where: str
    key: str
    form: str


def make_keys() -> dict[str, str]:
    """A fresh, unmistakable key per backend."""
    return {backend: f"sk-scan-{backend}-{secrets.token_hex(16)}" for backend in BACKENDS}


def connections(keys: dict[str, str], url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_SCAN_<BACKEND>`` for every backend, each with its key (``password``) and the service URL."""
    env = {}
    for backend, key in keys.items():
        host = f"{url}/v1" if backend.startswith("openai") else url
        conn = {"conn_type": "image_edit", "host": host, "password": key, "extra": {"backend": backend}}
        if backend == "firefly":
            conn["login"] = "scan-client-id"
        env[f"AIRFLOW_CONN_SCAN_{backend.upper()}"] = json.dumps(conn)
    return env


def forms(key: str) -> dict[str, bytes]:
    """The byte patterns of ``key`` that count as a leak."""
    raw = key.encode()
    return {"literal": raw, "base64": base64.b64encode(raw).rstrip(b"="), "url-quoted": quote(key, safe="").encode()}


def _parquet_text(data: bytes) -> bytes:
    """A Parquet file's rows as JSON text (DuckDB, as the audit CLI reads them)."""
    import tempfile

    import duckdb

    with tempfile.NamedTemporaryFile(suffix=".parquet") as file:
        file.write(data)
        file.flush()
        rows = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [file.name]).fetchall()
    return json.dumps(rows, default=str).encode()


def _search(where: str, data: bytes, keys: Iterable[str]) -> list[Hit]:
    if where.endswith(".parquet"):
        data += _parquet_text(data)
    return [Hit(where, key, form) for key in keys for form, pattern in forms(key).items() if pattern in data]


def scan_files(root: Path, keys: Iterable[str]) -> list[Hit]:
    """Every file under ``root`` (the Airflow home: logs, lineage events, the metadata DB)."""
    keys = list(keys)
    return [hit for path in sorted(root.rglob("*")) if path.is_file()
            for hit in _search(str(path), path.read_bytes(), keys)]


def scan_objects(prefix: str, keys: Iterable[str]) -> list[Hit]:
    """Every object under a storage URI (``file://`` or ``s3://``): workspace or published location."""
    from airflow_image_catalog.storage import StorageError, list_objects, read_bytes

    keys = list(keys)
    try:
        objects = list_objects(prefix)
    except StorageError:
        return []
    return [hit for obj in objects for hit in _search(obj.uri, read_bytes(obj.uri), keys)]


def scan_text(where: str, text: str, keys: Iterable[str]) -> list[Hit]:
    """Text that is not a file (captured task output, a trigger's serialized kwargs)."""
    return _search(where, text.encode(), list(keys))


def searched(root: Path, prefixes: Iterable[str]) -> int:
    """How many files and objects a scan reads (to say how much was searched, not just that nothing was found)."""
    from airflow_image_catalog.storage import StorageError, list_objects

    count = sum(1 for path in root.rglob("*") if path.is_file())
    for prefix in prefixes:
        try:
            count += len(list_objects(prefix))
        except StorageError:
            pass
    return count
