"""``make up``'s stack, and the README's ops guide on it, through the REST API the UI uses.

``python -m airflow_image_catalog.tooling.stack up`` (what ``make up`` runs) starts the api-server,
scheduler (LocalExecutor), dag-processor and triggerer on an Airflow home of the test's own; the
test signs in as the UI's admin and walks the ops guide: trigger a run, a chunk fails (the account
is out of credits for one request: HTTP 402 fails that edit task at once, no retries), read the
failed task's log, clear that one mapped instance, and watch it rerun as try 2, redo only the
image that was not final and pay for nothing twice. ``down`` stops every process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_image_catalog.tooling.stack import (
    STATE_FILE,
    AirflowStack,
    clean_environment,
    free_port,
    proc_stat,
)
from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.conftest import copy_samples

DAG_ID = "catalog_refresh"
SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg", "mug_white.jpg")
CONN_ID = "image_edit_service"
STEPS = 2  # marketplace_white_square: white_background, square_canvas

pytestmark = pytest.mark.timeout(600)


def _stack_cli(command: str, home: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_image_catalog.tooling.stack", command, "--home", str(home),
                           *extra], env=env, capture_output=True, text=True, timeout=400)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sample_set, edit_service):
    home = tmp_path_factory.mktemp("make-up")
    catalog = home / "catalog"
    copy_samples(sample_set, catalog / "samples", SAMPLES)
    connection = {"conn_type": "image_edit", "host": f"{edit_service.url}/v1", "password": "sk-local",
                  "extra": {"backend": "openai", "backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 3}}
    env = clean_environment(**{
        "CATALOG_HOME": str(catalog),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
        # `up` unpauses every DAG: without this, catalog_refresh's @daily run and catalog_watch would start too
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # as the Makefile exports for `make demo`: `up` must drop it, a real scheduler runs deadline alerts
        "AIRFLOW__OPERATORS__CATALOG_DEADLINE": "False",
    })
    up = _stack_cli("up", home, env, "--port", str(free_port()))
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-5000:]
        services = AirflowStack.attach(home)
        services.sign_in("admin", services.admin_password())  # the UI's user, with the generated password
        yield services, up.stdout, env
    finally:
        down = _stack_cli("down", home, env)
        print(down.stdout, down.stderr)


def test_up_starts_a_stack_that_runs_what_the_ui_asks(stack):
    services, printed, _ = stack
    assert f"Airflow UI:    {services.url}" in printed and services.admin_password() in printed
    assert set(services.alive()) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    dags = services.api("GET", "dags", params={"limit": 100})["dags"]
    assert {d["dag_id"] for d in dags} >= {"catalog_refresh", "catalog_review", "catalog_watch", "catalog_feed"}
    assert [d["dag_id"] for d in dags if d["is_paused"]] == []  # Trigger runs at once
    assert "image_catalog" in [p["name"] for p in services.api("GET", "plugins")["plugins"]]
    assert services.import_errors() == []


def test_ops_guide_a_failed_chunk_cleared_reruns_as_try_2_and_pays_nothing_twice(stack, service):
    services, _, env = stack
    service.state.faults.set([{"kind": "status", "status": 402, "count": 1, "path": "/v1/images/edits"}])
    try:
        run_id = services.trigger(DAG_ID, {"backend_conn_id": CONN_ID, "chunk_size": 2})
        assert services.wait_run(DAG_ID, run_id, timeout=300) == "failed"
        tis = {(t["task_id"], t["map_index"]): t for t in services.task_instances(DAG_ID, run_id)}
        failed = [key for key, t in tis.items() if key[0] == "edit" and t["state"] == "failed"]
        assert len(failed) == 1, tis  # the chunk whose request was refused; the other edited its images
        (_, index), other = failed[0], 1 - failed[0][1]
        assert tis[("edit", index)]["try_number"] == 1  # failed at once: retries would not buy credits
        assert tis[("edit", other)]["state"] == "success"
        assert service.state.served["POST /v1/images/edits"] == len(SAMPLES) * STEPS - 1  # 402'd: no second step
        first_try = len(service.state.performed)
        assert first_try == len(SAMPLES) * STEPS - STEPS

        # the task logs show in the UI (a scheduler-run task writes them; `airflow dags test` does not)
        log = services.task_log(DAG_ID, run_id, "edit", 1, map_index=index)
        assert "insufficient_credits" in log, log[-3000:]
        assert "images" in services.task_log(DAG_ID, run_id, "discover", 1)

        # partial publishing: the other chunk's images were published, the report says why the run failed
        report_file = Path(env["CATALOG_HOME"], "work", "runs", safe_run_key(run_id), "report.json")
        report = json.loads(report_file.read_text())
        assert report["counts"]["published"] == 2 and report["outcome"]["status"] == "failed"
        [failed_chunk] = [c for c in report["outcome"]["chunks"] if c["status"] != "ok"]
        assert failed_chunk["status"] == "edit_failed" and "insufficient_credits" in failed_chunk["reason"]
        assert (tis[("publish", -1)]["state"], tis[("outcome", -1)]["state"]) == ("success", "failed")

        # credits topped up (the fault is spent); clear the failed instance and what depends on it
        cleared = {(t["task_id"], t["map_index"]) for t in services.clear(DAG_ID, run_id, "edit", index)}
        assert ("edit", index) in cleared and ("edit", other) not in cleared and ("publish", -1) in cleared
        assert ("outcome", -1) in cleared and ("check_config", -1) in cleared  # its setup reruns with it
        assert services.wait_run(DAG_ID, run_id, timeout=300) == "success"
        tis = {(t["task_id"], t["map_index"]): t for t in services.task_instances(DAG_ID, run_id)}
        assert (tis[("edit", index)]["state"], tis[("edit", index)]["try_number"]) == ("success", 2)
        assert tis[("edit", other)]["try_number"] == 1  # not cleared, not rerun

        # try 2 redid only the image that was not final: the edited one kept, the refused one done once
        assert len(service.state.performed) == len(SAMPLES) * STEPS and service.state.duplicates() == 0
        assert f"chunk {index} done" in services.task_log(DAG_ID, run_id, "edit", 2, map_index=index)
        report = json.loads(report_file.read_text())
        assert report["counts"]["published"] == len(SAMPLES) and report["outcome"]["status"] == "success"
    except BaseException:
        print(services.logs())
        raise


def test_a_misspelt_conf_key_fails_the_first_task_by_name(stack):
    services, _, _ = stack
    run_id = services.trigger(DAG_ID, {"sourc": "/photos/new", "backend_conn_id": CONN_ID})
    assert services.wait_run(DAG_ID, run_id, timeout=120) == "failed"
    tis = {t["task_id"]: t for t in services.task_instances(DAG_ID, run_id)}
    check = tis["check_config"]
    assert (check["state"], check["try_number"]) == ("failed", 1)  # no retries: a typo does not fix itself
    assert {t["state"] for name, t in tis.items() if name != "check_config"} == {"upstream_failed"}
    assert "sourc: not a parameter of this DAG (did you mean 'source'?)" in services.task_log(
        DAG_ID, run_id, "check_config", 1)
    print(f"misspelt conf key: run failed in check_config after {check['duration']:.1f} s of task time")


def test_down_stops_every_process(stack):
    services, _, env = stack
    pids = dict(services.pids)
    down = _stack_cli("down", services.home, env)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    still = [pid for pid in pids.values() if (fields := proc_stat(pid)) is not None and fields[0] != "Z"]
    assert still == [] and not (services.home / STATE_FILE).exists()
