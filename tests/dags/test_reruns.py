"""Reruns never pay twice: after failures, after clearing one mapped instance, after a SIGKILL mid-chunk.

Every edit the local edit service actually performs is counted there (``performed``,
``duplicates``); the tests compare those counts with what the pipeline recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.dags.test_catalog_refresh import _dag
from tests.fixtures.service import product_png

pytestmark = pytest.mark.usefixtures("airflow_db")

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 1}
RECIPE = {"name": "warm_once", "output": {"format": "png"}, "quality": {"profile": "preserve"}, "steps": [
    {"id": "warm", "prompt": "Apply a warm golden-hour colour grade.", "local": {"op": "look",
                                                                                "params": {"name": "golden_hour"}}}]}


def _setup(tmp_path: Path, monkeypatch, service, count: int = 6) -> dict:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(count):
        (source / f"p{i}.png").write_bytes(product_png(160, 120, color=(30 + 35 * i, 90, 200 - 25 * i)))
    recipe = tmp_path / "warm_once.yaml"
    recipe.write_text(json.dumps(RECIPE))
    conn = {"conn_type": "image_edit", "host": service.url + "/v1", "password": "sk-rerun-key",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_RERUN_EDIT", json.dumps(conn))
    lenient = tmp_path / "lenient.yaml"  # these tests count edit calls; every edit passes the gate
    lenient.write_text("name: lenient\nexpectations:\n  - {metric: width, min: 16, why: test}\n")
    return {"quality_profile": str(lenient), "source": str(source), "workspace": str(tmp_path / "work"), "published": str(tmp_path / "published"),
            "recipe": str(recipe), "backend_conn_id": "rerun_edit", "chunk_size": 2, "min_pass_rate": 0.0}


def _records(tmp_path: Path) -> dict[str, dict]:
    manifests = (tmp_path / "work" / "runs").glob("*/edits/chunk-*.json")
    return {r["image_id"]: r for m in manifests for r in json.loads(m.read_text())["items"]}


def _report(tmp_path: Path) -> dict:
    return json.loads(next((tmp_path / "work" / "runs").glob("*/report.json")).read_text())


def _statuses(records: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records.values():
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return counts


def test_rerun_after_failures_redoes_only_what_did_not_finish(service, monkeypatch, tmp_path):
    conf = _setup(tmp_path, monkeypatch, service)
    service.state.faults.add(kind="status", status=503, path="/v1/images/edits", count=2)
    logical = datetime(2026, 3, 1, tzinfo=UTC)

    first = _dag().test(logical_date=logical, run_after=logical, run_conf=conf)
    assert first.state == "success"  # retryable failures are reported, not fatal
    assert _statuses(_records(tmp_path)) == {"edited": 4, "failed_retryable": 2}
    assert len(service.state.performed) == 4

    second = _dag().test(logical_date=logical, run_after=logical, run_conf=conf)  # the same run, cleared, rerun
    assert second.state == "success" and second.run_id == first.run_id
    records = _records(tmp_path)
    assert _statuses(records) == {"edited": 6}
    assert len(service.state.performed) == 6 and service.state.duplicates() == 0  # only the 2 redone
    from airflow_image_catalog.pipeline.costing.ledger import Ledger

    booked = Ledger(conf["workspace"]).entries(run_key=safe_run_key(first.run_id))
    assert len(booked) == 6 and len({e.entry_id for e in booked}) == 6  # one ledger row per paid call
    counts = _report(tmp_path)["counts"]
    assert counts["edited"] == counts["published"] == 6
    assert counts["cache_hits"] == 0  # the 4 done before were kept from the run's own state


def test_unchanged_catalog_makes_no_edit_call(service, monkeypatch, tmp_path, capfd):
    conf = _setup(tmp_path, monkeypatch, service, count=3)
    assert _dag().test(run_conf=conf).state == "success"
    logged = capfd.readouterr()
    assert "published 3 images of 3 found, 3 new or changed" in logged.out + logged.err  # the task log is captured here
    assert "XCom not found" not in logged.out + logged.err  # nothing asks for a mapped XCom index that does not exist
    assert len(service.state.performed) == 3
    served = service.state.requests()

    again = _dag().test(run_conf=conf)  # a new run (next night), nothing changed
    assert again.state == "success"
    assert service.state.requests() == served and len(service.state.performed) == 3  # zero calls
    reports = sorted((tmp_path / "work" / "runs").glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    latest = json.loads(reports[-1].read_text())
    # the truth about an unchanged catalog: 3 found, none changed (not "found 0", not an empty source)
    assert (latest["counts"]["found"], latest["counts"]["changed"], latest["counts"]["unchanged"]) == (3, 0, 3)
    assert latest["counts"]["published"] == 0
    assert latest["recipe"]["name"] == RECIPE["name"]  # named, not "-"
    html = Path(latest["report_html"][len("file://"):]).read_text()
    assert "3 found, 0 new or changed (3 unchanged since published)" in html and "recipe <b>-</b>" not in html
    discovery = json.loads((reports[-1].parent / "discovery.json").read_text())
    assert discovery["unchanged"] == 3 and discovery["images"] == 0


def _airflow_task(run_id: str, map_index: int) -> list[str]:
    airflow = str(Path(sys.executable).parent / "airflow")
    return [airflow, "tasks", "test", "catalog_refresh", "edit", run_id, "--map-index", str(map_index)]


def _chunk_records(tmp_path: Path, run_id: str, index: int) -> dict[str, dict]:
    from airflow_image_catalog.workspace.manifest import safe_run_key

    path = tmp_path / "work" / "runs" / safe_run_key(run_id) / "edits" / f"chunk-{index:05d}.json"
    return {r["image_id"]: r for r in json.loads(path.read_text())["items"]}


def _discovered_only(tmp_path: Path, monkeypatch, service, count: int) -> tuple[dict, str]:
    """A DAG run whose discover task ran for real; its other tasks are marked done without running."""
    conf = _setup(tmp_path, monkeypatch, service, count=count)
    dagrun = _dag().test(run_conf=conf, mark_success_pattern="^(edit|quality_gate|publish|outcome)$")
    assert dagrun.state == "success" and len(service.state.performed) == 0
    return conf, dagrun.run_id


def test_clearing_one_mapped_instance_redoes_only_its_unfinished_images(service, monkeypatch, tmp_path):
    conf = _setup(tmp_path, monkeypatch, service, count=6)
    dagrun = _dag().test(run_conf=conf)
    assert dagrun.state == "success" and len(service.state.performed) == 6
    run_id = dagrun.run_id

    service.state.faults.add(kind="status", status=503, path="/v1/images/edits", count=-1)  # would fail any call
    again = subprocess.run(_airflow_task(run_id, 1), capture_output=True, text=True, env=os.environ, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert len(service.state.performed) == 6 and service.state.requests("POST /v1/images/edits") == 6
    assert {r["status"] for r in _chunk_records(tmp_path, run_id, 1).values()} == {"edited"}
    assert "sk-rerun-key" not in again.stdout + again.stderr


def test_rerun_after_sigkill_mid_chunk_pays_once_per_image(service, monkeypatch, tmp_path):
    conf, run_id = _discovered_only(tmp_path, monkeypatch, service, count=4)
    monkeypatch.setenv("AIRFLOW_CONN_RERUN_EDIT", json.dumps({**json.loads(os.environ["AIRFLOW_CONN_RERUN_EDIT"]),
                                                              "extra": {"backend": "openai", "model": "gpt-image-1.5",
                                                                        **FAST, "max_concurrency": 1}}))
    service.state.latency_s = 0.5  # every edit takes a while: the kill lands mid-chunk
    task = subprocess.Popen(_airflow_task(run_id, 0), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(service.state.performed) < 1 and time.monotonic() < deadline and task.poll() is None:
        time.sleep(0.05)
    assert task.poll() is None, "the task finished before it could be killed"
    os.killpg(task.pid, signal.SIGKILL)  # the worker dies: no cleanup, no manifest
    task.wait(timeout=30)
    killed_at = len(service.state.performed)
    assert 1 <= killed_at < 2, killed_at  # chunk 0 holds 2 images, one at a time: the second was unfinished

    service.state.latency_s = 0.0
    done = subprocess.run(_airflow_task(run_id, 0), capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = _chunk_records(tmp_path, run_id, 0)
    assert {r["status"] for r in records.values()} == {"edited"} and len(records) == 2
    assert len(service.state.performed) == 2 and service.state.duplicates() == 0
    assert set(service.state.performed_by_image().values()) == {1}  # each image paid exactly once
    from airflow_image_catalog.pipeline.costing.ledger import Ledger

    assert len(Ledger(conf["workspace"]).entries(run_key=safe_run_key(run_id))) == 2  # booked once each
