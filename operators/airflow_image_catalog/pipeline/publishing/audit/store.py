"""The audit store: Parquet files in object storage, hive-partitioned by day and run, read with DuckDB.

Layout under ``<workspace>/audit/``::

    day=YYYY-MM-DD/run=<run_key>/part-00000.parquet   the records a run's publish (or review) wrote
    _runs/run=<run_key>.json                          index: the files that run wrote last

A run's write replaces its earlier files (on whatever day they were written), so rerunning publish
never duplicates rows; the index lets a rerun on another day find and delete them without listing
the whole store. Should a crash leave both, the ``audit`` view still shows each (run, image, event)
once: the most recently recorded. DuckDB writes and reads the Parquet itself (no pyarrow);
``s3://`` stores are read by downloading the files through the storage layer into a local cache
(no httpfs extension, no network access from DuckDB).

A connection from :func:`open_audit` is read-only: DuckDB may read files only under the audit store
(``allowed_directories`` with ``enable_external_access = false``), cannot load or install extensions,
and its configuration is locked (``lock_configuration``), so no later ``SET`` undoes that; see
"Securing DuckDB" (duckdb.org/docs/2.0/operations_manual/securing_duckdb/overview). Statements other
than queries are refused by :func:`read_only_query` before they run.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.publishing.audit.records import COLUMNS
from airflow_image_catalog.storage import (
    ObjectInfo,
    StorageError,
    delete,
    join_uri,
    list_objects,
    read_bytes,
    read_json_if_exists,
    write_bytes,
    write_json,
)
from airflow_image_catalog.storage.local import uri_to_path
from airflow_image_catalog.workspace.layout import WorkspaceLayout

INDEX_DIR = "_runs"
ROWS_PER_FILE = 2_000  # bounds DuckDB's memory per part file: a run's audit never sits in memory as one file
_RUN_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # manifest.safe_run_key's output
_PARQUET = re.compile(r"(?:^|/)day=(\d{4}-\d{2}-\d{2})/run=([^/]+)/([^/]+\.parquet)$")
HIVE_TYPES = "{'day': DATE, 'run': VARCHAR}"  # a numeric-looking run key stays a string


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check(day: str | date | None, run_key: str) -> tuple[str, str]:
    day = (day or datetime.now(UTC).date()).isoformat() if not isinstance(day, str) else day
    if date.fromisoformat(day).isoformat() != day:
        raise ValueError(f"day must be YYYY-MM-DD, got {day!r}")
    if not _RUN_KEY.fullmatch(run_key or ""):
        raise ValueError(f"run_key must be storage-safe (manifest.safe_run_key), got {run_key!r}")
    return day, run_key


def audit_root(workspace_uri: str) -> str:
    return WorkspaceLayout(workspace_uri).audit


def partition_uri(workspace_uri: str, day: str, run_key: str) -> str:
    return join_uri(audit_root(workspace_uri), f"day={day}", f"run={run_key}")


def _index_uri(workspace_uri: str, run_key: str) -> str:
    return join_uri(audit_root(workspace_uri), INDEX_DIR, f"run={run_key}.json")


class WorkspaceMissing(StorageError):
    """The workspace the audit store lives in does not exist (no such directory, no such bucket)."""


class ReadOnlyViolation(CatalogError, ValueError):
    """A statement that is not a query (or a query DuckDB refused to let touch files)."""


def check_workspace(workspace_uri: str) -> None:
    """Raise :class:`UnsupportedScheme`, :class:`WorkspaceMissing` or ``StorageError`` (unreachable,
    no credentials, access denied) unless the workspace can be read; an empty one is fine."""
    from airflow_image_catalog.storage import normalize_uri, storage_for

    uri = normalize_uri(workspace_uri)
    storage_for(uri)  # UnsupportedScheme
    local = _local_dir(uri)
    if local is not None:
        if not local.is_dir():
            raise WorkspaceMissing(f"workspace not found: {uri} ({'not a directory' if local.exists() else 'no such directory'})")
        return
    try:
        list_objects(audit_root(uri))
    except StorageError as exc:
        if getattr(exc, "code", None) == "NoSuchBucket":
            raise WorkspaceMissing(f"workspace not found: {uri} (bucket does not exist)") from None
        raise


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session in UTC (timestamps print and compare as stored)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _parquet_bytes(records: Sequence[dict[str, Any]]) -> bytes:
    """Typed Parquet of ``records`` (exactly :data:`COLUMNS`), via NDJSON and DuckDB's reader."""
    columns = "{" + ", ".join(f"{_sql_text(k)}: {_sql_text(v)}" for k, v in COLUMNS.items()) + "}"
    select = ", ".join(f'"{name}"' for name in COLUMNS)
    with tempfile.TemporaryDirectory(prefix="audit-write-") as tmp:
        source, target = Path(tmp, "records.ndjson"), Path(tmp, "part.parquet")
        source.write_text("".join(json.dumps({k: r.get(k) for k in COLUMNS}, default=str) + "\n" for r in records))
        con = connect()
        try:
            con.execute(
                f"COPY (SELECT {select} FROM read_json({_sql_text(str(source))}, format='newline_delimited', "
                f"columns={columns})) TO {_sql_text(str(target))} (FORMAT parquet, COMPRESSION zstd)")
        finally:
            con.close()
        return target.read_bytes()


def _objects(prefix: str) -> list[ObjectInfo]:
    try:
        return list_objects(prefix)
    except StorageError:  # nothing written there yet
        return []


def write_audit(records: Sequence[dict[str, Any]], workspace_uri: str, *, run_key: str,
                day: str | date | None = None, rows_per_file: int = ROWS_PER_FILE) -> str:
    """Write ``records`` as the run's audit partition; returns the partition URI.

    Replaces whatever this run wrote before (same day or another), so a rerun does not duplicate
    rows. ``day`` (default: today, UTC) is the partition day. An empty ``records`` still writes
    one empty file: the run's earlier records are replaced by none.
    """
    day, run_key = _check(day, run_key)
    partition = partition_uri(workspace_uri, day, run_key)
    chunks = [records[i:i + rows_per_file] for i in range(0, len(records), rows_per_file)] or [[]]
    written = [write_bytes(join_uri(partition, f"part-{n:05d}.parquet"), _parquet_bytes(chunk))
               for n, chunk in enumerate(chunks)]
    index = _index_uri(workspace_uri, run_key)
    earlier = read_json_if_exists(index, {}).get("files", [])
    write_json(index, {"run_key": run_key, "day": day, "files": written, "rows": len(records),
                        "written_at": datetime.now(UTC).isoformat(timespec="seconds")})
    keep = {unquote(uri) for uri in written}
    for uri in {*earlier, *(obj.uri for obj in _objects(partition))}:
        if unquote(uri) not in keep and unquote(uri).endswith(".parquet"):
            delete(uri)
    return partition


def _local_dir(uri: str) -> Path | None:
    if urlsplit(uri).scheme != "file":
        return None

    return uri_to_path(uri)


def _sync_remote(root: str, cache_dir: Path) -> None:
    """Mirror the store's Parquet files into ``cache_dir`` (same hive paths), downloading only new
    versions (the ETag is in the local name) and removing files the store no longer has."""
    wanted: dict[Path, str] = {}
    for obj in list_objects(root):  # an object store lists nothing for a missing prefix; errors are real
        match = _PARQUET.search(obj.uri[len(root):])
        if match:
            day, run, name = match.groups()
            version = re.sub(r"[^A-Za-z0-9]", "", obj.etag or str(obj.size))[:32]
            wanted[cache_dir / f"day={day}" / f"run={run}" / f"{name[:-8]}.{version}.parquet"] = obj.uri
    for path in cache_dir.glob("day=*/run=*/*.parquet"):
        if path not in wanted:
            path.unlink()
    for path, uri in wanted.items():
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(read_bytes(uri))


def _empty_view() -> str:
    columns = ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in COLUMNS.items())
    return f"SELECT {columns}, CAST(NULL AS DATE) AS day, CAST(NULL AS VARCHAR) AS run WHERE false"


def open_audit(workspace_uri: str, *, cache_dir: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``audit`` over every partition of the workspace's store.

    ``file://`` stores are read in place; others are mirrored into ``cache_dir`` first (default: a
    temporary directory removed at exit; pass a lasting one to download only what changed).
    """
    root = audit_root(workspace_uri)
    local = _local_dir(root)
    if local is None:
        if cache_dir is None:
            cache_dir = tempfile.mkdtemp(prefix="audit-cache-")
            atexit.register(shutil.rmtree, cache_dir, True)
        local = Path(cache_dir)
        local.mkdir(parents=True, exist_ok=True)
        _sync_remote(root, local)
    pattern = local / "day=*" / "run=*" / "*.parquet"
    con = connect()
    if any(local.glob("day=*/run=*/*.parquet")):
        source = (f"SELECT * FROM read_parquet({_sql_text(str(pattern))}, hive_partitioning = true, "
                  f"hive_types = {HIVE_TYPES}, union_by_name = true)")
    else:
        source = _empty_view()
    con.execute(f"""CREATE VIEW audit AS SELECT * FROM ({source})
        QUALIFY row_number() OVER (PARTITION BY run_key, image_id, event ORDER BY recorded_at DESC) = 1""")
    _lock_down(con, local)
    return con


def _lock_down(con: duckdb.DuckDBPyConnection, store: Path) -> None:
    """Files only under the store, no extensions, and no ``SET`` that could give either back."""
    con.execute(f"SET allowed_directories = [{_sql_text(str(store.resolve()) + '/')}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")


def read_only_query(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """Rows of user SQL that may only query (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW``, ...):
    anything else (``CREATE``, ``COPY``, ``ATTACH``, ``INSTALL``, ``SET``, ...) is refused before it runs,
    and files outside the store are refused by DuckDB while it runs."""
    statements = con.extract_statements(sql)
    refused = [s.type.name for s in statements if s.type != duckdb.StatementType.SELECT]
    if refused:
        raise ReadOnlyViolation(f"the audit store is read-only: only queries are allowed, not {', '.join(refused)}")
    if len(statements) != 1:
        raise ReadOnlyViolation(f"one query at a time, got {len(statements)}")
    try:
        return query(con, sql)
    except duckdb.PermissionException as exc:
        raise ReadOnlyViolation(f"the audit store is read-only: {str(exc).splitlines()[0]}") from None


def query(con: duckdb.DuckDBPyConnection, sql: str,
          params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts (column name -> value)."""
    cursor = con.execute(sql, params if isinstance(params, Mapping) else list(params or []))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def find_records(workspace_uri: str, keys: Sequence[tuple[str, str]], *, event: str = "quarantined",
                 con: duckdb.DuckDBPyConnection | None = None) -> list[dict[str, Any]]:
    """The ``event`` records of (run_key, image_id) pairs: what a review decision is recorded on."""
    if not keys:
        return []
    con = con or open_audit(workspace_uri)
    rows = query(con, "SELECT * FROM audit WHERE event = ? AND image_id IN (SELECT unnest(?))",
                 [event, sorted({image_id for _, image_id in keys})])
    wanted = set(keys)
    return [row for row in rows if (row["run_key"], row["image_id"]) in wanted]
