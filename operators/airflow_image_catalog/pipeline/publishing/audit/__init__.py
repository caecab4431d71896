"""Audit trail: one record per published, quarantined or reviewed image, as partitioned Parquet.

:func:`audit_records` builds the records at publish time, :func:`review_records` when a reviewer
decides, :func:`write_audit` stores them under ``<workspace>/audit/day=.../run=.../``, and
:func:`open_audit` gives a DuckDB connection with the view ``audit``. ``python -m airflow_image_catalog.pipeline.publishing.audit``
answers "where did this image come from", "what did run X cost" and "what did model M produce".
DuckDB is imported with the store, never by the records module.
"""

from __future__ import annotations

from typing import Any

from airflow_image_catalog.pipeline.publishing.audit.records import (
    AUDIT_SCHEMA_VERSION,
    COLUMNS,
    EVENTS,
    audit_records,
    review_records,
    rights_records,
)

__all__ = ["AUDIT_SCHEMA_VERSION", "COLUMNS", "EVENTS", "audit_records", "review_records", "rights_records", "write_audit",
           "open_audit", "find_records"]


def __getattr__(name: str) -> Any:
    """The store (and DuckDB) load on first use, so importing the records stays light."""
    if name in ("write_audit", "open_audit", "find_records"):
        from airflow_image_catalog.pipeline.publishing.audit import store

        return getattr(store, name)
    raise AttributeError(name)
