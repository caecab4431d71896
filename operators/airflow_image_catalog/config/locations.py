"""Where the catalog lives by default: ``$CATALOG_HOME`` (a folder or a URI), else ``data/`` in a source
checkout, else the user's data directory (``$XDG_DATA_HOME/airflow-image-catalog``, by default
``~/.local/share/airflow-image-catalog``): never inside an installed package (site-packages).

DAG params, the audit CLI and the UI plugin take their defaults from here; every path *inside* a
workspace is :mod:`airflow_image_catalog.workspace.layout`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_image_catalog.storage import join_uri

#: the name of the user data folder when neither ``$CATALOG_HOME`` nor a source checkout says where
DATA_DIR_NAME = "airflow-image-catalog"


def source_checkout() -> Path | None:
    """The repository this package runs from (an editable install or ``PYTHONPATH=operators``), else None."""
    root = Path(__file__).resolve().parents[3]  # <repo>/operators/airflow_image_catalog/config/locations.py
    return root if (root / "setup.cfg").is_file() and (root / "operators" / "airflow_image_catalog").is_dir() else None


def catalog_home() -> Path:
    """Root of the embedded defaults: ``$CATALOG_HOME``; else ``data/`` in a source checkout; else the user's
    data directory (XDG base directory spec), so a pip install never writes into site-packages."""
    if os.environ.get("CATALOG_HOME"):
        return Path(os.environ["CATALOG_HOME"])
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "data"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / DATA_DIR_NAME


def catalog_location(part: str) -> str:
    """A default location under ``$CATALOG_HOME`` (``samples``, ``work``, ``published``).

    ``$CATALOG_HOME`` may be a URI (``s3://bucket/catalog``), so that a deployment's scheduled runs
    keep their state in object storage and any worker can run any task.
    """
    home = os.environ.get("CATALOG_HOME", "")
    if "://" in home:
        return join_uri(home, part)
    return str(catalog_home() / part)
