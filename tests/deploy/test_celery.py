"""catalog_refresh on CeleryExecutor with real Redis and PostgreSQL, through Airflow's real services.

The deployment docker/compose.yaml describes, without Docker: PostgreSQL (metadata DB and Celery result
backend) and Redis (broker) from Debian's packages as processes on loopback (``make services`` installs
them where it may; elsewhere this test skips and says why), the metadata DB migrated onto PostgreSQL,
and the api-server, scheduler, dag-processor, triggerer and two Celery workers as processes with the
settings of ``docker/airflow.env`` (compose's env_file). The test only talks to the REST API. One run
covers the deployment questions at once:

- executor independence: source, workspace and published catalog on the local S3 server; the tasks
  spread over both workers (each records its worker's name as its host), and a cluster policy
  (``task_isolation.py``) gives every task execution its own empty working and temporary directory;
- the deferrable path: ``bfl`` edits submitted on a worker, polled by the real triggerer (the local
  edit service plays BFL), resumed in a new task process, on whichever worker is free;
- a rerun through the REST API: clearing one mapped edit instance runs it as try 2 on a worker,
  which keeps every final result and submits (pays for) nothing again.
"""

from __future__ import annotations

import json
import re
import socket
from collections import defaultdict
from pathlib import Path

import pytest

import airflow_image_catalog
from airflow_image_catalog.tooling.stack import AirflowStack, free_port, wait_for
from tests.deploy import servers
from tests.deploy.test_docker_files import AIRFLOW_ENV, read_env_file
from tests.fixtures.s3 import s3_client, s3_environment

HERE = Path(__file__).resolve().parent
DAG_ID = "catalog_refresh"
SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg")
BUCKET = "deploy-catalog"
CONN_ID = "bfl_deploy"
STEPS = 2  # marketplace_white_square: white_background, square_canvas
WORKERS = ("worker-a", "worker-b")
HOSTS = {f"{name}.{socket.gethostname()}" for name in WORKERS}  # what tooling.stack.worker_hostname records

pytestmark = pytest.mark.timeout(600)


def _celery_workers(stack: AirflowStack) -> set[str]:
    """The workers answering a ping through the broker (``airflow celery list-workers``)."""
    import subprocess

    out = subprocess.run([stack.airflow, "celery", "list-workers", "--output", "json"], env=stack.env,
                         capture_output=True, text=True, timeout=60)
    try:
        return {entry["worker_name"].split("@")[0] for entry in json.loads(out.stdout or "[]")}
    except (ValueError, KeyError, TypeError):
        return set()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, moto_server, edit_service):
    """PostgreSQL, Redis and the Airflow services with two Celery workers, healthy and the DAGs parsed; all
    stopped (process groups) after."""
    missing = servers.missing()
    if missing:
        pytest.skip(f"CeleryExecutor test skipped: {', '.join(missing)} not installed "
                    "(`make services` installs them as root with apt-get)")
    home = tmp_path_factory.mktemp("airflow-celery")
    (home / "catalog" / "samples").mkdir(parents=True)  # the embedded defaults: empty, never used here
    connection = {"conn_type": "image_edit", "host": edit_service.url, "password": "bfl-deploy-key",
                  "extra": {"backend": "bfl", "backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 3}}
    env = {
        **s3_environment(moto_server.url),  # the aws_default connection and keys: every task reaches moto
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
        "CATALOG_HOME": str(home / "catalog"),
        "CATALOG_TASK_DIRS": str(home / "task-dirs"),
    }
    postgres = redis = services = None
    try:
        postgres, redis = servers.PostgresServer().start(), servers.RedisServer().start()
        settings = {
            **read_env_file(AIRFLOW_ENV),  # CeleryExecutor and its options, as compose.yaml runs it
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.sqlalchemy_url(),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{postgres.sqlalchemy_url('postgresql')}",
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the run the test triggers, no @daily run
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        }
        # one process each, so two mapped instances queued together go to different workers; each worker
        # names itself as the tasks' host and serves its logs on its own port, as on separate machines
        workers = {name: (["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1"],
                          {"CATALOG_WORKER_NAME": name,
                           "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_image_catalog.tooling.stack.worker_hostname",
                           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
                   for name in WORKERS}
        services = AirflowStack(home, env, settings=settings, workers=workers,
                                local_settings=HERE / "task_isolation.py")
        services.start()
        request.getfixturevalue("sample_set")  # made while the services start
        services.wait_healthy()
        services.wait_dag(DAG_ID)
        wait_for(lambda: services.check_alive() or _celery_workers(services) >= set(WORKERS), 120,
                 "both Celery workers answering", interval=2)
        assert postgres.query("SELECT count(*) FROM dag WHERE dag_id = %s", DAG_ID) == [(1,)]  # on PostgreSQL
        yield services
    except BaseException:
        if services is not None:
            print(services.logs())
        raise
    finally:
        if services is not None:
            services.stop()
        for server in (redis, postgres):
            if server is not None:
                server.stop()


def _objects(client, prefix: str = "") -> dict[str, bytes | None]:
    """Every object under ``prefix``: JSON ones with their bytes, the rest as None."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() if key.endswith(".json") else None
            for key in keys}


def test_celery_run_on_s3_with_deferral_and_a_rerun(stack, service, moto_server, sample_set):
    client = s3_client(moto_server.url)
    client.create_bucket(Bucket=BUCKET)
    for name in SAMPLES:
        client.put_object(Bucket=BUCKET, Key=f"source/{name}", Body=(sample_set[0] / name).read_bytes())
    jpeg = (sample_set[0] / "box_tea.jpg").read_bytes()
    client.put_object(Bucket=BUCKET, Key="source/garbled.jpg", Body=jpeg[: len(jpeg) * 2 // 3])
    conf = {"source": f"s3://{BUCKET}/source", "workspace": f"s3://{BUCKET}/work",
            "published": f"s3://{BUCKET}/published", "backend_conn_id": CONN_ID, "deferrable": True,
            "chunk_size": 2}  # two mapped edits and gates, queued together: one for each worker
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
        state = stack.wait_run(DAG_ID, run_id, timeout=360, on_poll=watch)
        tis = stack.task_instances(DAG_ID, run_id)
        print({(t["task_id"], t["map_index"]): (t["duration"], t["hostname"]) for t in tis})
        assert state == "success", tis

        # the whole DAG ran, the edit and the gate as mapped task instances, every task on a Celery worker
        ran = sorted((ti["task_id"], ti["map_index"], ti["state"]) for ti in tis)
        assert ran == [("check_config", -1, "success"), ("cost_check", -1, "success"), ("discover", -1, "success"),
                       ("edit", 0, "success"), ("edit", 1, "success"),
                       ("escalate", -1, "success"),  # not a routed run: nothing to escalate
                       ("outcome", -1, "success"),
                       ("publish", -1, "success"), ("quality_gate", 0, "success"), ("quality_gate", 1, "success"),
                       ("rights_check", -1, "success")]
        hosts = {ti["hostname"] for ti in tis}
        assert hosts == HOSTS, hosts  # both workers ran tasks, and nothing ran anywhere else

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
        submits = service.state.served["POST /v1/flux-kontext-pro"]
        assert submits == len(SAMPLES) * STEPS  # never resubmitted
        assert all("deferred" in seen[("edit", i)] for i in (0, 1)), dict(seen)
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
        assert per_task[("edit", 0)] >= 2 and per_task[("edit", 1)] >= 2  # submitted, then resumed elsewhere
        # ... and what one task hands the next is object-storage URIs, never a local path
        handed = [stack.xcom(DAG_ID, run_id, "discover"), stack.xcom(DAG_ID, run_id, "cost_check")]
        handed += [stack.xcom(DAG_ID, run_id, task, i) for task in ("edit", "quality_gate") for i in (0, 1)]
        uris = [u for value in handed for u in (value if isinstance(value, list) else [value])]
        assert uris and all(u.startswith(f"s3://{BUCKET}/work/") for u in uris), uris
        manifests = b"".join(v for k, v in objects.items() if k.endswith(".json")).decode()
        assert str(stack.home) not in manifests  # no task's directory (nor the services' home) is named
        package = Path(airflow_image_catalog.__file__).parent.as_uri()  # the installed package: the same on every worker
        assert {m for m in re.findall(r"file://[^\"]*", manifests) if not m.startswith(package)} == set()
        edits = [json.loads(v) for k, v in objects.items() if "/edits/chunk-" in k]
        assert {e["recipe"]["ref"] for e in edits} == {"marketplace_white_square"}  # loads on any worker

        # a rerun through the REST API: clear edit[1]; try 2 on a worker keeps every final result, pays nothing
        cleared = stack.clear(DAG_ID, run_id, "edit", 1, downstream=False)
        # clearing a task clears its setup task too (check_config reruns with it; it only reads the conf)
        assert sorted((t["task_id"], t["map_index"]) for t in cleared) == [("check_config", -1), ("edit", 1)]
        assert stack.wait_run(DAG_ID, run_id, timeout=180) == "success"
        (rerun,) = [t for t in stack.task_instances(DAG_ID, run_id) if (t["task_id"], t["map_index"]) == ("edit", 1)]
        assert (rerun["state"], rerun["try_number"]) == ("success", 2) and rerun["hostname"] in HOSTS
        assert service.state.served["POST /v1/flux-kontext-pro"] == submits and service.state.duplicates() == 0
        log = stack.task_log(DAG_ID, run_id, "edit", 2, map_index=1)
        assert "chunk 1 done" in log, log[-2000:]  # the UI shows the rerun's log, served from a worker's files
    except BaseException:
        print(stack.logs())
        raise
