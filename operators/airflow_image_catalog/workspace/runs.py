"""Where a DAG run's state lives: ``<workspace>/runs/<run key>/``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow_image_catalog.storage import join_uri
from airflow_image_catalog.workspace.manifest import safe_run_key


def run_root_for(workspace: str, context: Any) -> tuple[str, str]:
    """The run's root URI and its storage-safe key, from the task context's run id."""
    run_key = safe_run_key(context["run_id"])
    return join_uri(workspace, "runs", run_key), run_key


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
