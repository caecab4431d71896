"""Both ways to deploy the project, each in a new virtualenv (uv; its cache makes them take seconds).

- ``pip install``: the package from a copy of what the Dockerfile copies; Airflow discovers the
  provider (``apache_airflow_provider`` entry point) and the UI plugin (``airflow.plugins``).
- Folder deployment, as MWAA, Cloud Composer and Astro take it: the DAGs folder and the plugins
  folder with ``airflow_image_catalog/`` inside (``python -m airflow_image_catalog.tooling.bundle``), and an Airflow with the
  bundle's requirements but without the package: the DAGs import and the plugin loads.
"""

from __future__ import annotations

import configparser
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_image_catalog.tooling.bundle import write_bundle
from airflow_image_catalog.tooling.stack import REPO, clean_environment
from tests.conftest import PRISTINE_DB

pytestmark = pytest.mark.timeout(300)

UV = Path(sys.executable).parent / "uv"
#: what `pip install .` needs; docker/Dockerfile copies the same files
PACKAGE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "operators")
DAG_IDS = {"catalog_refresh", "catalog_review", "catalog_watch", "catalog_feed"}
PACKAGE = "airflow-image-catalog"


def _declared_plugins() -> set[str]:
    """Plugin names the package registers through the ``airflow.plugins`` entry point (issue 8's UI plugin)."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser.get("options.entry_points", "airflow.plugins", fallback="").splitlines()
    return {line.split("=")[0].strip() for line in lines if "=" in line}


def _venv(path: Path, *requirements: str) -> Path:
    """A new virtualenv on this interpreter with ``requirements`` pinned by constraints.txt; its bin/."""
    subprocess.run([str(UV), "venv", "-q", "-p", sys.executable, str(path)], check=True, capture_output=True)
    proc = subprocess.run([str(UV), "pip", "install", "-q", "--python", str(path / "bin" / "python"),
                           "-c", str(REPO / "constraints.txt"), *requirements], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return path / "bin"


def _airflow(bin_dir: Path, home: Path, *args: str, **env: str) -> str:
    """``airflow ARGS`` with its own home (no DAGs, no examples unless ``env`` says); its stdout."""
    home.mkdir(parents=True, exist_ok=True)
    empty = home / "empty"
    empty.mkdir(exist_ok=True)
    environment = clean_environment(**{"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                                       "AIRFLOW__CORE__DAGS_FOLDER": str(empty),
                                       "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty), **env})
    proc = subprocess.run([str(bin_dir / "airflow"), *args], env=environment, cwd=home, capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _json(text: str):
    """The JSON document in a CLI's stdout (anything logged before it skipped; "No data found" = [])."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith(("[", "{")):
            try:
                return json.loads(text[offset:])
            except json.JSONDecodeError:  # a log line that starts with a bracket
                pass
        offset += len(line)
    if "No data found" in text:
        return []
    raise AssertionError(f"no JSON in the CLI's output:\n{text[-2000:]}")


def test_pip_install_registers_the_provider_and_the_plugin(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    bin_dir = _venv(tmp_path / "venv", str(source))
    home = tmp_path / "home"

    location = subprocess.run([str(bin_dir / "python"), "-c", "import airflow_image_catalog as p; print(p.__file__)"],
                              capture_output=True, text=True, cwd=tmp_path, env=clean_environment())
    assert location.stdout.startswith(str(tmp_path / "venv")), location  # the installed copy, not the checkout

    providers = _json(_airflow(bin_dir, home, "providers", "list", "-o", "json"))
    assert any(p["package_name"] == PACKAGE for p in providers), [p["package_name"] for p in providers]
    plugins = {p["name"] for p in _json(_airflow(bin_dir, home, "plugins", "-o", "json"))}
    declared = _declared_plugins()
    assert declared, "setup.cfg declares no airflow.plugins entry point (the UI plugin's issue adds it)"
    assert declared <= plugins, plugins


def _migrated_db(home: Path) -> dict[str, str]:
    """A copy of the session's metadata DB as migrated, before any test ran a DAG (same Airflow version): the
    CLI's ``--local`` DAG listing wants a current schema and no DAGs parsed from elsewhere; a copy saves a
    migration."""
    home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(PRISTINE_DB) as src, sqlite3.connect(home / "airflow.db") as dst:
        src.backup(dst)
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}


def test_folder_deployment_without_the_package(tmp_path: Path, airflow_db: Path):  # airflow_db: PRISTINE_DB
    bundle = write_bundle(tmp_path / "deploy")
    assert (bundle / "plugins" / "airflow_image_catalog" / "__init__.py").is_file()
    airflow_pin = next(line for line in (REPO / "constraints.txt").read_text().splitlines()
                       if line.startswith("apache-airflow=="))
    bin_dir = _venv(tmp_path / "venv", airflow_pin, "-r", str(bundle / "requirements.txt"))
    home = tmp_path / "home"

    installed = subprocess.run([str(bin_dir / "python"), "-c", "import importlib.util as u; print(u.find_spec('airflow_image_catalog'))"],
                               capture_output=True, text=True, cwd=tmp_path, env=clean_environment())
    assert installed.stdout.strip() == "None", installed  # nothing but the folders provides the package
    folders = {"AIRFLOW__CORE__DAGS_FOLDER": str(bundle / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(bundle / "plugins"), **_migrated_db(home)}

    errors = _json(_airflow(bin_dir, home, "dags", "list-import-errors", "--local", "-o", "json", **folders))
    assert errors == [], errors
    dags = _json(_airflow(bin_dir, home, "dags", "list", "--local", "-o", "json", **folders))
    assert {d["dag_id"] for d in dags} == DAG_IDS
    assert all(d["fileloc"].startswith(str(bundle / "dags")) for d in dags)
    plugins = _json(_airflow(bin_dir, home, "plugins", "-o", "json", **folders))
    names = {p["name"] for p in plugins}
    assert _declared_plugins() <= names, names
    assert all(str(bundle / "plugins" / "airflow_image_catalog") not in p.get("source", "") for p in plugins)  # ignored
