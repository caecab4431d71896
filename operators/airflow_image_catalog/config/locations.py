"""Where the catalog lives by default: ``$CATALOG_HOME`` (a folder or a URI), else ``data/`` in the checkout.

DAG params, the audit CLI and the UI plugin take their defaults from here; every path *inside* a
workspace is :mod:`airflow_image_catalog.workspace.layout`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_image_catalog.storage import join_uri


def catalog_home() -> Path:
    """Root of the embedded defaults: ``$CATALOG_HOME``, else ``data/`` in the repo checkout."""
    return Path(os.environ.get("CATALOG_HOME", Path(__file__).resolve().parents[3] / "data"))


def catalog_location(part: str) -> str:
    """A default location under ``$CATALOG_HOME`` (``samples``, ``work``, ``published``).

    ``$CATALOG_HOME`` may be a URI (``s3://bucket/catalog``), so that a deployment's scheduled runs
    keep their state in object storage and any worker can run any task.
    """
    home = os.environ.get("CATALOG_HOME", "")
    if "://" in home:
        return join_uri(home, part)
    return str(catalog_home() / part)
