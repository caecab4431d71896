"""Test-wide setup: an isolated Airflow home (SQLite) and generated sample images.

Environment variables are set before anything imports Airflow, so the tests never
touch the developer's ``.airflow`` or ``data`` folders.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="catalog-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # a full-length HMAC key for the api-server tests
        "AIRFLOW__OPERATORS__CATALOG_DEADLINE": "False",  # dag.test() cannot finish a run with deadlines (3.3.2)
        # lineage events of every test run go to the isolated home, never the developer's .airflow
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "append": True,
                                                      "log_file_path": str(_AIRFLOW_HOME / "openlineage.jsonl")}),
    }
)
os.environ.pop("AIRFLOW_CONN_IMAGE_EDIT_DEFAULT", None)

# fixtures for every test folder, imported once the environment above is in place
from tests.fixtures.recorder import recorder, wire_recorder  # noqa: E402, F401
from tests.fixtures.s3 import moto_server, s3_bucket, s3_fault_proxy, s3_faults  # noqa: E402, F401
from tests.fixtures.service import edit_service, service  # noqa: E402, F401

#: the metadata DB as migrated, before any test ran a DAG (a current schema, no DAGs or runs)
PRISTINE_DB = Path(tempfile.mkdtemp(prefix="catalog-pristine-db-")) / "airflow.db"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB, made once per session (a copy as migrated goes to ``PRISTINE_DB``)."""
    import sqlite3

    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with sqlite3.connect(_AIRFLOW_HOME / "airflow.db") as src, sqlite3.connect(PRISTINE_DB) as dst:
        src.backup(dst)
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def sample_set(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled sample catalog (procedural products + scikit-image photos) and its truth masks."""
    from airflow_image_catalog.tooling.samples import make_samples

    root = tmp_path_factory.mktemp("sample-set")
    images, truth = root / "samples", root / "samples_truth"
    make_samples(images, truth, with_broken=True)
    return images, truth


def copy_samples(sample_set: tuple[Path, Path], dest: Path, names: tuple[str, ...]) -> Path:
    """A small source folder with some of the sample images; returns it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).write_bytes((sample_set[0] / name).read_bytes())
    return dest


def write_strict_profile(path: Path, min_fill: float = 0.99) -> Path:
    """A quality profile no marketplace edit passes (product fill at 85% < ``min_fill``)."""
    path.write_text(f"name: strict\nexpectations:\n  - {{metric: product_fill, min: {min_fill}, why: test}}\n")
    return path


#: folders whose files run longest (real schedulers and executors, whole DAG runs): collected first, so that
#: with several workers (``make test`` runs whole files on each) no long file is left running alone at the end
LONG_FIRST = ("tests/deploy/", "tests/dags/", "tests/tooling/reliability/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, folder in enumerate(LONG_FIRST) if item.nodeid.startswith(folder)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: each folder keeps its own order
