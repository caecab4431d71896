"""Both ways to deploy the project, each in a new virtualenv (uv; its cache makes them take seconds).

- ``pip install``: the wheel built from a copy of what the Dockerfile copies, installed without the
  ``test`` extra; Airflow discovers the provider (``apache_airflow_provider`` entry point) and the UI
  plugin (``airflow.plugins``); the wheel installs one top-level package, ``airflow_image_catalog``,
  so a team's own ``operators/`` package in the DAGs or plugins folder keeps working beside it; every
  runtime module imports with neither pytest nor moto installed.
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
import zipfile
from pathlib import Path

import pytest

from airflow_image_catalog.tooling.bundle import write_bundle
from airflow_image_catalog.tooling.stack import REPO, clean_environment
from tests.conftest import PRISTINE_DB

pytestmark = pytest.mark.timeout(300)

UV = Path(sys.executable).parent / "uv"
#: what `pip install .` needs; docker/Dockerfile copies the same files
PACKAGE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "operators")
DAG_IDS = {"catalog_refresh", "catalog_review", "catalog_consent", "catalog_watch", "catalog_feed", "catalog_canary"}
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built (``uv build``) from a copy of what the Dockerfile copies."""
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGE_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(UV), "build", "-q", "--wheel", "--out-dir", str(dist), str(source)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """bin/ of a new virtualenv with the wheel installed as users install it: no ``test`` extra."""
    return _venv(tmp_path_factory.mktemp("installed") / "venv", str(wheel))


def test_the_wheel_installs_one_top_level_package(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["airflow_image_catalog"]
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert roots == {"airflow_image_catalog"}  # no top-level `operators` (or anything else) lands in site-packages
    # the tooling ships (docker compose runs the local edit service and the sample generator from the image)
    assert "airflow_image_catalog/tooling/service/server.py" in names
    # the facet schemas the lineage _schemaURLs point at ship, at their version, for the plugin to serve
    from airflow_image_catalog.lineage import FACET_SCHEMA_VERSION
    from airflow_image_catalog.lineage.facets import FACET_CLASSES

    assert {f"airflow_image_catalog/lineage/schemas/{FACET_SCHEMA_VERSION}/{cls.__name__}.json"
            for cls in FACET_CLASSES.values()} <= set(names)
    assert not any(name.startswith("airflow_image_catalog/tests") or "/conftest.py" in name for name in names)


def test_pip_install_registers_the_provider_and_the_plugin(installed: Path, tmp_path: Path):
    bin_dir = installed
    home = tmp_path / "home"

    location = subprocess.run([str(bin_dir / "python"), "-c", "import airflow_image_catalog as p; print(p.__file__)"],
                              capture_output=True, text=True, cwd=tmp_path, env=clean_environment())
    assert location.stdout.startswith(str(bin_dir.parent)), location  # the installed copy, not the checkout
    # its default catalog home is the user's data directory, never site-packages (nor the checkout)
    home_of = [str(bin_dir / "python"), "-c", "from airflow_image_catalog.config.locations import catalog_home, "
               "catalog_location; print(catalog_home()); print(catalog_location('work'))"]
    user = subprocess.run(home_of, capture_output=True, text=True, cwd=tmp_path,
                          env=clean_environment(HOME=str(tmp_path / "user"), XDG_DATA_HOME="", CATALOG_HOME=""))
    assert user.stdout.split() == [str(tmp_path / "user" / ".local/share/airflow-image-catalog"),
                                   str(tmp_path / "user" / ".local/share/airflow-image-catalog/work")], user
    explicit = subprocess.run(home_of, capture_output=True, text=True, cwd=tmp_path,
                              env=clean_environment(CATALOG_HOME="s3://shop-catalog/catalog"))
    assert explicit.stdout.split()[-1] == "s3://shop-catalog/catalog/work", explicit  # an explicit setting wins

    providers = _json(_airflow(bin_dir, home, "providers", "list", "-o", "json"))
    assert any(p["package_name"] == PACKAGE for p in providers), [p["package_name"] for p in providers]
    plugins = {p["name"] for p in _json(_airflow(bin_dir, home, "plugins", "-o", "json"))}
    declared = _declared_plugins()
    assert declared, "setup.cfg declares no airflow.plugins entry point (the UI plugin's issue adds it)"
    assert declared <= plugins, plugins


def _console_scripts() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser.get("options.entry_points", "console_scripts", fallback="").splitlines()
    return [line.split("=")[0].strip() for line in lines if "=" in line]


def test_the_console_scripts_run(installed: Path, tmp_path: Path):
    scripts = _console_scripts()
    assert {"image-catalog-audit", "image-catalog-edit-service", "image-catalog-bundle"} <= set(scripts)
    for script in scripts:
        proc = subprocess.run([str(installed / script), "--help"], capture_output=True, text=True, cwd=tmp_path,
                              env=clean_environment(AIRFLOW_HOME=str(tmp_path / "home")), timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {script}"), proc.stdout + proc.stderr


RUNTIME_IMPORTS = """
import importlib, importlib.util, json, pkgutil, sys

modules, failed = [], {}

def walk(package):  # pkgutil.walk_packages would import tooling/ to look inside it
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name == "airflow_image_catalog.tooling" or info.name.endswith(".__main__"):
            continue
        modules.append(info.name)
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = repr(exc)
            continue
        if info.ispkg:
            walk(module)

import airflow_image_catalog as package
walk(package)
print(json.dumps({"file": package.__file__, "modules": modules, "failed": failed,
                  "test_libraries": [m for m in ("pytest", "moto") if importlib.util.find_spec(m)],
                  "tooling_loaded": sorted(m for m in sys.modules if m.startswith("airflow_image_catalog.tooling")),
                  "top_level_operators": importlib.util.find_spec("operators") is not None}))
"""


def test_every_runtime_module_imports_without_pytest_or_moto(installed: Path, tmp_path: Path):
    """Everything under airflow_image_catalog but tooling/, imported in the installed venv (no ``test`` extra)."""
    from tests.test_layout import ROOT, runtime_files

    proc = subprocess.run([str(installed / "python"), "-c", RUNTIME_IMPORTS], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_environment(AIRFLOW_HOME=str(tmp_path / "home")), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _json(proc.stdout)
    assert result["file"].startswith(str(installed.parent))
    assert result["test_libraries"] == []  # neither pytest nor moto is installed there
    assert result["failed"] == {}
    expected = {".".join(("airflow_image_catalog", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
                for p in runtime_files() if p.name != "__main__.py"}
    assert set(result["modules"]) | {"airflow_image_catalog"} == expected  # every runtime module was imported
    assert result["tooling_loaded"] == [] and result["top_level_operators"] is False


TEAM_OPERATOR = """from airflow.sdk import BaseOperator


class MyOperator(BaseOperator):
    def execute(self, context):
        return "the team's own operator"
"""
TEAM_DAG = """from datetime import datetime

import operators
from airflow.sdk import DAG
from operators.my_operator import MyOperator

from airflow_image_catalog.operators.discover import DiscoverImagesOperator

assert operators.__file__ == {team_init!r}, operators.__file__  # the team's package, not one of ours

with DAG("team_dag", schedule=None, start_date=datetime(2026, 1, 1)):
    MyOperator(task_id="mine") >> DiscoverImagesOperator(task_id="discover", source="/srv/photos", workspace="/srv/work")
"""


@pytest.mark.parametrize("where", ["dags", "plugins"])
def test_a_teams_own_operators_package_beside_ours(where: str, installed: Path, tmp_path: Path, airflow_db: Path):
    """Airflow puts the DAGs and plugins folders on sys.path; teams keep an ``operators/`` package there."""
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    team = (dags if where == "dags" else plugins) / "operators"
    team.mkdir(parents=True)
    dags.mkdir(exist_ok=True)
    plugins.mkdir(exist_ok=True)
    (team / "__init__.py").write_text("")
    (team / "my_operator.py").write_text(TEAM_OPERATOR)
    (dags / "team_dag.py").write_text(TEAM_DAG.format(team_init=str(team / "__init__.py")))
    home = tmp_path / "home"
    folders = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
               **_migrated_db(home)}

    # parsed as the dag-processor parses: the DAGs folder's bundle (``dags-folder``) on sys.path
    local = ("--local", "--bundle-name", "dags-folder", "-o", "json")
    errors = _json(_airflow(installed, home, "dags", "list-import-errors", *local, **folders))
    assert errors == [], errors
    listed = _json(_airflow(installed, home, "dags", "list", *local, **folders))
    assert [d["dag_id"] for d in listed] == ["team_dag"]
    providers = _json(_airflow(installed, home, "providers", "list", "-o", "json", **folders))
    assert any(p["package_name"] == PACKAGE for p in providers)  # our entry point still loads beside theirs


def _migrated_db(home: Path) -> dict[str, str]:
    """A copy of the session's metadata DB as migrated, before any test ran a DAG (same Airflow version): the
    CLI's ``--local`` DAG listing wants a current schema and no DAGs parsed from elsewhere; a copy saves a
    migration."""
    home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(PRISTINE_DB) as src, sqlite3.connect(home / "airflow.db") as dst:
        src.backup(dst)
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}


def test_folder_deployment_without_the_package(tmp_path: Path, airflow_db: Path):  # airflow_db: PRISTINE_DB
    """Merged into a deployment that already has a team's ``plugins/operators/`` package and DAG."""
    deploy = tmp_path / "deploy"
    team = deploy / "plugins" / "operators"
    team.mkdir(parents=True)
    (team / "__init__.py").write_text("")
    (team / "my_operator.py").write_text(TEAM_OPERATOR)
    (deploy / "dags").mkdir()
    (deploy / "dags" / "team_dag.py").write_text(TEAM_DAG.format(team_init=str(team / "__init__.py")))
    bundle = write_bundle(deploy)
    assert (bundle / "plugins" / "airflow_image_catalog" / "__init__.py").is_file()
    assert (team / "my_operator.py").read_text() == TEAM_OPERATOR
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
    assert {d["dag_id"] for d in dags} == DAG_IDS | {"team_dag"}
    assert all(d["fileloc"].startswith(str(bundle / "dags")) for d in dags)
    plugins = _json(_airflow(bin_dir, home, "plugins", "-o", "json", **folders))
    names = {p["name"] for p in plugins}
    assert _declared_plugins() <= names, names
    assert all(str(bundle / "plugins" / "airflow_image_catalog") not in p.get("source", "") for p in plugins)  # ignored
