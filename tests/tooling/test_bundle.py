"""The folder bundle: merges into a deployment that already has other packages, updates only what it
wrote, and refuses (naming the files, writing nothing) when something else is in the way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_image_catalog.tooling import bundle
from airflow_image_catalog.tooling.bundle import MANIFEST, BundleConflict, main, write_bundle
from tests.conftest import REPO

TEAM_FILES = {
    "plugins/operators/__init__.py": "",
    "plugins/operators/my_operator.py": "from airflow.sdk import BaseOperator\n\nclass MyOperator(BaseOperator): ...\n",
    "plugins/team_plugin.py": "# the team's own plugin\n",
    "plugins/.airflowignore": "operators/tests/\n",
    "dags/team_dag.py": "# the team's DAG\n",
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def team_deployment(root: Path) -> Path:
    for name, text in TEAM_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout's copy (what the bundle reads), free to change."""
    copy = tmp_path / "repo"
    for name in ("dags", "plugins", "operators"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("setup.cfg", "constraints.txt"):
        shutil.copy(REPO / name, copy / name)
    return copy


def test_a_new_folder_gets_the_whole_layout_and_a_manifest(tmp_path: Path, repo: Path):
    out = write_bundle(tmp_path / "deploy", repo)
    assert (out / "plugins" / "airflow_image_catalog" / "__init__.py").is_file()
    assert sorted(p.name for p in (out / "dags").iterdir()) == sorted(p.name for p in (repo / "dags").glob("*.py"))
    assert (out / "plugins" / "catalog_plugin.py").is_file() and not (out / "plugins" / "README.md").exists()
    assert (out / "plugins" / ".airflowignore").read_text() == "airflow_image_catalog/\n"
    pins = (out / "requirements.txt").read_text().splitlines()[1:]
    assert pins and not any(line.startswith("apache-airflow==") for line in pins)  # Airflow is the platform's
    recorded = json.loads((out / MANIFEST).read_text())
    written = snapshot(out)
    assert set(recorded["files"]) == set(written) - {MANIFEST, "plugins/.airflowignore"}
    assert "previous" not in recorded
    assert not any("__pycache__" in name or name.endswith(".bundle-tmp") for name in written)


def test_merges_into_a_deployment_with_a_teams_own_operators_package(tmp_path: Path, repo: Path):
    out = team_deployment(tmp_path / "deploy")
    write_bundle(out, repo)
    after = snapshot(out)
    for name, text in TEAM_FILES.items():
        if name != "plugins/.airflowignore":
            assert after[name] == text.encode(), name  # the team's files are untouched
    assert after["plugins/.airflowignore"] == b"operators/tests/\nairflow_image_catalog/\n"  # merged, not replaced
    assert "plugins/airflow_image_catalog/operators/image_edit.py" in after
    write_bundle(out, repo)  # a re-run adds nothing twice
    assert snapshot(out) == after


def test_a_rerun_updates_its_own_files_and_removes_what_it_no_longer_ships(tmp_path: Path, repo: Path):
    out = team_deployment(tmp_path / "deploy")
    write_bundle(out, repo)
    (repo / "dags" / "catalog_feed.py").write_text("# a newer catalog_feed\n")
    (repo / "operators" / "airflow_image_catalog" / "config" / "documents.py").unlink()
    write_bundle(out, repo)
    assert (out / "dags" / "catalog_feed.py").read_text() == "# a newer catalog_feed\n"
    assert not (out / "plugins" / "airflow_image_catalog" / "config" / "documents.py").exists()
    recorded = json.loads((out / MANIFEST).read_text())["files"]
    assert "plugins/airflow_image_catalog/config/documents.py" not in recorded
    assert all((out / name).read_text() == text for name, text in TEAM_FILES.items() if "ignore" not in name)


@pytest.mark.parametrize("in_the_way", ["dags/catalog_refresh.py", "plugins/airflow_image_catalog/__init__.py",
                                        "requirements.txt"])
def test_refuses_a_file_it_did_not_write_and_writes_nothing(tmp_path: Path, repo: Path, in_the_way: str):
    out = team_deployment(tmp_path / "deploy")
    (out / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (out / in_the_way).write_text("# someone else's\n")
    before = snapshot(out)
    with pytest.raises(BundleConflict, match=f"not written by the bundle: {in_the_way}. Nothing was written"):
        write_bundle(out, repo)
    assert snapshot(out) == before


def test_refuses_to_overwrite_its_own_file_changed_since(tmp_path: Path, repo: Path):
    out = write_bundle(tmp_path / "deploy", repo)
    edited = out / "plugins" / "airflow_image_catalog" / "links" / "run_page.py"
    edited.write_text(edited.read_text() + "# a hot fix made on the server\n")
    (repo / "dags" / "catalog_feed.py").write_text("# a newer catalog_feed\n")
    before = snapshot(out)
    with pytest.raises(BundleConflict, match="changed since the bundle wrote them: "
                                             "plugins/airflow_image_catalog/links/run_page.py"):
        write_bundle(out, repo)
    assert snapshot(out) == before  # not even the unrelated update went in


def test_a_folder_where_a_file_should_be_is_in_the_way(tmp_path: Path, repo: Path):
    out = tmp_path / "deploy"
    (out / "plugins" / "catalog_plugin.py").mkdir(parents=True)
    with pytest.raises(BundleConflict, match="plugins/catalog_plugin.py/"):
        write_bundle(out, repo)


def test_an_interrupted_update_can_be_run_again(tmp_path: Path, repo: Path, monkeypatch):
    out = write_bundle(tmp_path / "deploy", repo)
    (repo / "dags" / "catalog_feed.py").write_text("# a newer catalog_feed\n")
    (repo / "dags" / "catalog_review.py").write_text("# a newer catalog_review\n")
    original, calls = Path.write_bytes, []

    def dies_after_one(self, data):
        calls.append(self)
        if len(calls) > 1:
            raise KeyboardInterrupt("killed")
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, repo)
    monkeypatch.setattr(Path, "write_bytes", original)
    write_bundle(out, repo)  # half old, half new files are all the bundle's: no conflict
    assert (out / "dags" / "catalog_review.py").read_text() == "# a newer catalog_review\n"
    assert "previous" not in json.loads((out / MANIFEST).read_text())


def test_the_cli_names_the_conflict_and_exits_2(tmp_path: Path, repo: Path, monkeypatch, capsys):
    monkeypatch.setattr(bundle.write_bundle, "__defaults__", (repo,))  # the CLI bundles this checkout
    out = team_deployment(tmp_path / "deploy")
    (out / "dags" / "catalog_watch.py").write_text("# theirs\n")
    assert main([str(out)]) == 2
    assert "dags/catalog_watch.py" in capsys.readouterr().err
    (out / "dags" / "catalog_watch.py").unlink()
    assert main([str(out)]) == 0
    assert "folder deployment in" in capsys.readouterr().out
