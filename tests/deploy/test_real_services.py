"""catalog_refresh through Airflow's real services, not ``dag.test()``.

The api-server, scheduler (LocalExecutor: every task in its own process), dag-processor
and triggerer run as processes on loopback with their own Airflow home; the test only
talks to the REST API. One run covers the deployment questions at once:

- the deferrable path: ``bfl`` edits submitted by the workers, polled by the real
  triggerer (the local edit service plays BFL), resumed in a new task process;
- executor independence: source, workspace and published catalog on the local S3
  server, and a cluster policy (``task_isolation.py``) gives every task execution its
  own empty working and temporary directory, as separate Celery workers would have.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

import airflow_image_catalog
from tests.deploy.stack import AirflowStack
from tests.fixtures.s3 import s3_client, s3_environment

HERE = Path(__file__).resolve().parent
DAG_ID = "catalog_refresh"
SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg")
BUCKET = "deploy-catalog"
CONN_ID = "bfl_deploy"
STEPS = 2  # marketplace_white_square: white_background, square_canvas

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, moto_server, edit_service):
    """The four services, up and healthy with the project's DAGs parsed; stopped (process groups) after."""
    home = tmp_path_factory.mktemp("airflow-services")
    (home / "catalog" / "samples").mkdir(parents=True)  # the embedded defaults: empty, never used here
    connection = {"conn_type": "image_edit", "host": edit_service.url, "password": "bfl-deploy-key",
                  "extra": {"backend": "bfl", "backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 3}}
    env = {
        **s3_environment(moto_server.url),  # the aws_default connection and keys: every task reaches moto
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
        "CATALOG_HOME": str(home / "catalog"),
        "CATALOG_TASK_DIRS": str(home / "task-dirs"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the run the test triggers, no @daily run
    }
    services = AirflowStack(home, env, local_settings=HERE / "task_isolation.py")
    try:
        services.start()
        request.getfixturevalue("sample_set")  # made while the services start
        services.wait_healthy()
        services.wait_dag(DAG_ID)
        yield services
    except BaseException:
        print(services.logs())
        raise
    finally:
        services.stop()


def _objects(client, prefix: str = "") -> dict[str, bytes | None]:
    """Every object under ``prefix``: JSON ones with their bytes, the rest as None."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() if key.endswith(".json") else None
            for key in keys}


def test_deferrable_run_on_s3_through_the_real_services(stack, service, moto_server, sample_set):
    client = s3_client(moto_server.url)
    client.create_bucket(Bucket=BUCKET)
    for name in SAMPLES:
        client.put_object(Bucket=BUCKET, Key=f"source/{name}", Body=(sample_set[0] / name).read_bytes())
    jpeg = (sample_set[0] / "box_tea.jpg").read_bytes()
    client.put_object(Bucket=BUCKET, Key="source/garbled.jpg", Body=jpeg[: len(jpeg) * 2 // 3])
    conf = {"source": f"s3://{BUCKET}/source", "workspace": f"s3://{BUCKET}/work",
            "published": f"s3://{BUCKET}/published", "backend_conn_id": CONN_ID, "deferrable": True,
            "chunk_size": 4}  # one mapped edit and gate: the gate's GX start-up is the slowest task here
    # BFL jobs on the local service are ready at once, so the triggerer would fire within a second or two of
    # the deferral. Airflow 3.3.2's scheduler fails a resumed task (up_for_retry, "state changed externally")
    # when the executor's "success" for the deferring process arrives after the resumed process started
    # running; a real BFL job takes seconds. Each poll answered after 8 s keeps the test off that race.
    service.state.faults.set([{"kind": "latency", "count": -1, "path": "/v1/get_result", "seconds": 8}])
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)

    def watch() -> None:  # every state a task instance was seen in, while the run goes on
        for ti in stack.task_instances(DAG_ID, run_id):
            seen[(ti["task_id"], ti["map_index"])].add(ti["state"])

    try:
        run_id = stack.trigger(DAG_ID, conf)
        state = stack.wait_run(DAG_ID, run_id, timeout=300, on_poll=watch)
        tis = stack.task_instances(DAG_ID, run_id)
        print({(t["task_id"], t["map_index"]): t["duration"] for t in tis})
        assert state == "success", tis

        # the whole DAG ran, the edit and the gate as mapped task instances
        ran = sorted((ti["task_id"], ti["map_index"], ti["state"]) for ti in tis)
        assert ran == [("cost_check", -1, "success"), ("discover", -1, "success"), ("edit", 0, "success"),
                       ("publish", -1, "success"), ("quality_gate", 0, "success")]

        # published on S3, with the manifest naming them
        objects = _objects(client)
        published = sorted(k for k in objects if k.startswith("published/"))
        assert published == ["published/ball_red.jpg", "published/box_tea.jpg", "published/can_soda.jpg"]
        manifest = json.loads(objects["work/state/published_manifest.json"])
        assert set(json.dumps(manifest).split('"')) >= {"ball_red", "box_tea", "can_soda"}
        (report_key,) = [k for k in objects if k.endswith("/report.json") and "/cost/" not in k]
        report = json.loads(objects[report_key])
        assert report["counts"]["published"] == 3 and {f["image_id"] for f in report["failures"]} == {"garbled"}

        # deferred: the workers submitted, the triggerer polled, a new task process resumed
        assert service.state.served["POST /v1/flux-kontext-pro"] == len(SAMPLES) * STEPS  # never resubmitted
        assert "deferred" in seen[("edit", 0)], dict(seen)
        trigger_logs = list(stack.home.glob(f"logs/dag_id={DAG_ID}/run_id={run_id}/task_id=edit/**/*.log.trigger.*"))
        assert trigger_logs and all("Trigger fired event" in p.read_text() for p in trigger_logs)  # by the triggerer

        # executor independence: every task execution had its own process and empty directory ...
        executions = [json.loads(p.read_text()) for p in (stack.home / "task-dirs").glob("*/task.json")]
        executions = [e for e in executions if e["run_id"] == run_id]
        assert len({e["pid"] for e in executions}) == len(executions)
        per_task = defaultdict(int)
        for e in executions:
            per_task[(e["task_id"], e["map_index"])] += 1
        assert set(per_task) == {(t, m) for t, m, _ in ran}
        assert per_task[("edit", 0)] >= 2  # submitted, then resumed in another process and directory
        # ... and what one task hands the next is object-storage URIs, never a local path
        handed = [stack.xcom(DAG_ID, run_id, "discover"), stack.xcom(DAG_ID, run_id, "cost_check")]
        handed += [stack.xcom(DAG_ID, run_id, task, 0) for task in ("edit", "quality_gate")]
        uris = [u for value in handed for u in (value if isinstance(value, list) else [value])]
        assert uris and all(u.startswith(f"s3://{BUCKET}/work/") for u in uris), uris
        manifests = b"".join(v for k, v in objects.items() if k.endswith(".json")).decode()
        assert str(stack.home) not in manifests  # no task's directory (nor the services' home) is named
        package = Path(airflow_image_catalog.__file__).parent.as_uri()  # the installed package: the same on every worker
        assert {m for m in re.findall(r"file://[^\"]*", manifests) if not m.startswith(package)} == set()
        edits = [json.loads(v) for k, v in objects.items() if "/edits/chunk-" in k]
        assert {e["recipe"]["ref"] for e in edits} == {"marketplace_white_square"}  # loads on any worker
    except BaseException:
        print(stack.logs())
        raise
