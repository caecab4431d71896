"""``make test-docker``: the docker/ stack built and started for real, driven through the REST API.

The images come from ``docker/offline/build-images`` (no registry: Debian from debootstrap, the local stand-in for
the official Airflow image, ours on it, PostgreSQL, Redis and the S3 server), the stack from
``docker/compose.yaml`` plus ``docker/compose.offline.yaml`` only, every container on the host network (the
daemon has no bridge), so all traffic stays on 127.0.0.1. The phases, each timed:

1. engine: a running Docker daemon, or ``dockerd --bridge=none --iptables=false`` started here (root only;
   elsewhere this prints why it skips and exits 0), stopped again at the end;
2. build: the images (the layer cache makes an unchanged rebuild take seconds);
3. up, healthy: ``docker-compose up -d``, then every health check passing and the one-shots exited 0;
4. run: ``catalog_refresh`` triggered through the REST API with the catalog on the S3 server (four of the
   samples minio-init seeded, one of them a truncated upload), finished ``success``, the published images
   and the run report in the bucket;
5. scale: ``--scale airflow-worker=2``, both workers answering;
6. deferred run: a second run on the ``bfl`` backend (the local edit service), deferrable: its tasks ran on
   both workers, its edits deferred and the triggerer container fired their triggers;
7. down: ``down -v`` (containers and volumes), the env file removed; the images stay as the build cache.

Run from the repository root: ``.venv/bin/python -m tests.deploy.docker_stack``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx

from airflow_image_catalog.tooling.stack import AirflowStack, wait_for

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
DAG_ID = "catalog_refresh"
BUCKET = "catalog"
PROJECT = "catalog-docker-test"
# loopback ports of the offline stack (compose.offline.yaml's knobs), away from Airflow's defaults and from the
# ephemeral range other tests take free ports from
PORTS = {"AIRFLOW_UI_PORT": 17080, "OFFLINE_POSTGRES_PORT": 17432, "OFFLINE_REDIS_PORT": 17379,
         "OFFLINE_S3_PORT": 17900, "OFFLINE_EDIT_PORT": 17765, "OFFLINE_SCHEDULER_HEALTH_PORT": 17974,
         "OFFLINE_TRIGGER_LOG_PORT": 17794, "OFFLINE_WORKER_LOG_PORT": 17793}
ONE_SHOTS = {"airflow-init", "minio-init"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
# the runs edit a few of the bundled samples minio-init seeded (all 18 take several minutes per run on 2 cores)
SUBSET = ("ball_red.png", "box_tea.jpg", "can_soda.jpg", "broken_upload.jpg")
DAEMON_FLAGS = ["--bridge=none", "--iptables=false", "--ip-forward=false"]


class Skip(Exception):
    """This machine cannot run the test (no daemon and no way to start one)."""


def docker_cli() -> str:
    """Debian's client (the daemon's own version) where installed, else whatever ``docker`` is on PATH."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


class Phases:
    """Times each phase and prints it as it ends, and the table at the end."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.start = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            yield
        finally:
            self.times[name] = time.monotonic() - began
            print(f"--- {name}: {self.times[name]:.0f} s", flush=True)

    def table(self) -> str:
        rows = [f"  {name:<22} {seconds:7.0f} s" for name, seconds in self.times.items()]
        return "\n".join(["phase times:", *rows, f"  {'total':<22} {time.monotonic() - self.start:7.0f} s"])


class Engine:
    """The Docker daemon: the one running, or one started here with host networking only (and stopped)."""

    def __init__(self, docker: str) -> None:
        self.docker = docker
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.gettempdir()) / "catalog-docker-test-dockerd.log"

    def running(self) -> bool:
        return subprocess.run([self.docker, "info"], capture_output=True, timeout=30).returncode == 0

    def ensure(self) -> None:
        if self.running():
            print("using the running Docker daemon")
            return
        dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
        if dockerd is None:
            raise Skip("dockerd not found (Debian package docker.io; `make docker-engine` installs it as root)")
        if os.geteuid() != 0:
            raise Skip("no Docker daemon runs and dockerd needs root to start")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([dockerd, *DAEMON_FLAGS], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is not None or self.running(), 60, "dockerd answering", interval=1)
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise Skip(f"dockerd could not start here: {self.log.read_text(errors='replace')[-1500:]}")
        print(f"started dockerd {' '.join(DAEMON_FLAGS)} (pid {self.proc.pid}, log {self.log})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        print("stopped the dockerd started here")


class Compose:
    """``docker-compose`` on docker/compose.yaml + docker/compose.offline.yaml with this test's env file."""

    def __init__(self, env_file: Path, docker: str) -> None:
        self.docker = docker
        self.base = ["docker-compose", "--project-directory", str(DOCKER_DIR), "--env-file", str(env_file),
                     "-p", PROJECT, "-f", str(DOCKER_DIR / "compose.yaml"), "-f", str(DOCKER_DIR / "compose.offline.yaml")]

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        out = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout)
        if check and out.returncode:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return out

    def containers(self) -> list[dict]:
        """Every container of the project (one-shots too): name, service, status, health, exit code."""
        ids = self("ps", "-a", "-q").stdout.split()
        if not ids:
            return []
        fmt = ('{"name": "{{.Name}}", "service": "{{index .Config.Labels "com.docker.compose.service"}}", '
               '"status": "{{.State.Status}}", "exit": {{.State.ExitCode}}, '
               '"health": "{{if .State.Health}}{{.State.Health.Status}}{{end}}"}')
        out = subprocess.run([self.docker, "inspect", "--format", fmt, *ids], capture_output=True, text=True, check=True)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def wait_healthy(self, timeout: float, workers: int = 1) -> list[dict]:
        """Until every long-running service is healthy (``workers`` of them workers) and the one-shots exited 0."""
        def ready():
            containers = self.containers()
            failed = [c for c in containers if c["service"] in ONE_SHOTS and c["status"] == "exited" and c["exit"]]
            failed += [c for c in containers if c["health"] == "unhealthy"
                       or (c["service"] not in ONE_SHOTS and c["status"] in ("exited", "dead"))]
            if failed:
                raise RuntimeError(f"failed: {failed}\n{self.logs()}")
            running = [c for c in containers if c["service"] not in ONE_SHOTS]
            done = all(c["status"] == "exited" for c in containers if c["service"] in ONE_SHOTS)
            healthy = all(c["health"] == "healthy" for c in running)
            count = sum(c["service"] == "airflow-worker" for c in running)
            return containers if done and healthy and count == workers and len(running) >= 8 else None
        return wait_for(ready, timeout, "every container healthy", interval=3)

    def logs(self, tail: int = 60) -> str:
        return self("logs", "--no-color", "--tail", str(tail), check=False).stdout[-20000:]


def env_file(path: Path, concurrency: int) -> None:
    """docker/.env.example with fresh secrets (never committed: a temporary file) and this test's ports."""
    import base64

    values = {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(16),
        "MINIO_ROOT_USER": "catalog",
        "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ALL_ADMINS": "False",
        "CATALOG_BUCKET": BUCKET,
        "OPENLINEAGE_DISABLED": "True",
        "OFFLINE_WORKER_CONCURRENCY": str(concurrency),
        "OFFLINE_SCHEDULED_RUNS": "False",  # only the runs triggered here (no @daily run on the same paths)
        **{name: str(port) for name, port in PORTS.items()},
    }
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)


def s3_objects(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def check_outputs(client, conf: dict, run_id: str) -> dict:
    """The run's published images and report are in the bucket; the report counts what was published."""
    sources = {Path(k).stem for k in s3_objects(client, conf["source"].removeprefix(f"s3://{BUCKET}/") + "/")}
    published = [k for k in s3_objects(client, conf["published"].removeprefix(f"s3://{BUCKET}/") + "/")
                 if Path(k).suffix in IMAGE_SUFFIXES]  # beside them: the feed (feed.csv) and manifests
    work = conf["workspace"].removeprefix(f"s3://{BUCKET}/")
    keys = [k for k in s3_objects(client, f"{work}/runs/") if k.endswith("/report.json") and "/cost/" not in k]
    reports = {key: json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys}
    (key, report), = [(k, r) for k, r in reports.items() if r.get("run_id") == run_id] or [(None, None)]
    assert report is not None, f"no report of {run_id} under s3://{BUCKET}/{work}/runs/: {keys}"
    assert published and {Path(k).stem for k in published} <= sources, (published, sources)
    counts = report["counts"]
    assert counts["edited"] > 0 and counts["published"] == len({Path(k).stem for k in published}), (counts, published)
    failed = {f["image_id"] for f in report["failures"]}
    assert "broken_upload" in failed, failed  # the truncated upload is reported, not published
    print(f"run {run_id}: {counts['published']} images published to {conf['published']}, "
          f"failures {sorted(failed)}, report s3://{BUCKET}/{key}")
    return report


def run(args: argparse.Namespace) -> int:
    phases = Phases()
    docker = docker_cli()
    engine = Engine(docker)
    home = Path(tempfile.mkdtemp(prefix="catalog-docker-test-"))
    compose = None
    try:
        with phases("engine"):
            engine.ensure()
        with phases("build"):
            subprocess.run([str(DOCKER_DIR / "offline" / "build-images")], check=True,
                           env={**os.environ, "DOCKER": docker, "LOG_DIR": str(home)})
            for tag in ("airflow-image-catalog:0.1.0", "catalog-airflow:3.3.2-python3.11"):
                size = subprocess.run([docker, "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True,
                                      text=True, check=True).stdout.strip()
                print(f"image {tag}: {int(size) / 1e6:.0f} MB")
        env_file(home / ".env", args.concurrency)
        compose = Compose(home / ".env", docker)
        with phases("up"):
            # before anything starts: a service off the host network would make compose create a bridge network,
            # whose address is private-range (the profiles' services count: compose makes networks for them too)
            import yaml

            resolved = yaml.safe_load(compose("--profile", "flower", "--profile", "lineage", "config").stdout)
            off_host = sorted(name for name, svc in resolved["services"].items() if svc.get("network_mode") != "host")
            assert off_host == [], f"services not on the host network: {off_host}"
            compose("up", "-d", "--no-build")
        with phases("healthy"):
            containers = compose.wait_healthy(args.timeout)
            print(f"{len(containers)} containers: " + ", ".join(sorted(c["service"] for c in containers)))
            networks = subprocess.run([docker, "network", "ls", "--format", "{{.Name}}", "--filter",
                                       f"label=com.docker.compose.project={PROJECT}"],
                                      capture_output=True, text=True, check=True).stdout.split()
            assert networks == [], f"the offline stack made networks: {networks}"  # host network only

        stack = AirflowStack(home, base_env={}, port=PORTS["AIRFLOW_UI_PORT"])
        password = json.loads(compose("exec", "-T", "airflow-apiserver", "cat",
                                      "/opt/airflow/simple_auth_manager_passwords.json.generated").stdout)["admin"]
        stack.sign_in("admin", password)  # as the README says: the generated password of `admin`
        import boto3

        keys = dict(line.split("=", 1) for line in (home / ".env").read_text().splitlines())
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{PORTS['OFFLINE_S3_PORT']}",
                              region_name="us-east-1", aws_access_key_id=keys["MINIO_ROOT_USER"],
                              aws_secret_access_key=keys["MINIO_ROOT_PASSWORD"])

        with phases("run (1 worker)"):
            stack.wait_dag(DAG_ID, timeout=240)
            for name in SUBSET:  # from what minio-init seeded
                client.copy_object(Bucket=BUCKET, Key=f"test-source/{name}",
                                   CopySource={"Bucket": BUCKET, "Key": f"samples/{name}"})
            # the README's conf on those (chunks of 2: two mapped edits)
            conf = {"source": "s3://catalog/test-source", "workspace": "s3://catalog/test-work",
                    "published": "s3://catalog/test-published", "chunk_size": 2}
            run_id = stack.trigger(DAG_ID, conf)
            state = stack.wait_run(DAG_ID, run_id, timeout=args.timeout)
            tis = stack.task_instances(DAG_ID, run_id)
            assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
            check_outputs(client, conf, run_id)

        with phases("scale to 2 workers"):
            # the worker service only: a plain `up --scale` also reruns the one-shots (migrate, seed)
            compose("up", "-d", "--no-build", "--no-deps", "--scale", "airflow-worker=2", "airflow-worker")
            compose.wait_healthy(args.timeout, workers=2)

        with phases("deferred run (2 workers)"):
            edit_service = f"http://127.0.0.1:{PORTS['OFFLINE_EDIT_PORT']}"
            # answered after 8 s, as a real BFL job takes seconds (see tests/deploy/test_celery.py for the
            # Airflow 3.3.2 race an instant answer runs into)
            httpx.post(f"{edit_service}/_service/faults", timeout=10, json={"faults": [
                {"kind": "latency", "count": -1, "path": "/v1/get_result", "seconds": 8}]}).raise_for_status()
            conf = {"source": "s3://catalog/test-source", "workspace": "s3://catalog/test-work-bfl",
                    "published": "s3://catalog/test-published-bfl", "backend_conn_id": "image_edit_bfl",
                    "deferrable": True, "chunk_size": 2}  # the README's deferrable run, on the same four
            seen: dict[tuple[str, int], set[str]] = defaultdict(set)

            def watch() -> None:
                for ti in stack.task_instances(DAG_ID, run_id):
                    seen[(ti["task_id"], ti["map_index"])].add(ti["state"])

            run_id = stack.trigger(DAG_ID, conf)
            state = stack.wait_run(DAG_ID, run_id, timeout=args.timeout, on_poll=watch)
            tis = stack.task_instances(DAG_ID, run_id)
            assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
            check_outputs(client, conf, run_id)
            hosts = defaultdict(list)
            for ti in tis:
                hosts[ti["hostname"]].append(f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0
                                             else ti["task_id"])
            for host, tasks in sorted(hosts.items()):
                print(f"  {host}: {', '.join(sorted(tasks))}")
            assert len(hosts) == 2 and all(h.startswith("worker-") for h in hosts), dict(hosts)  # both workers
            edits = [key for key in seen if key[0] == "edit" and key[1] >= 0]  # the mapped instances
            assert edits and all("deferred" in seen[key] for key in edits), dict(seen)
            stats = httpx.get(f"{edit_service}/_service/stats", timeout=10).json()
            fired = compose("exec", "-T", "airflow-triggerer", "bash", "-c",
                            f"grep -rl 'Trigger fired event' /opt/airflow/logs/dag_id={DAG_ID}/run_id={run_id}/"
                            " --include='*.log.trigger.*' | wc -l").stdout.strip()
            assert int(fired or 0) >= len(edits), (fired, edits)
            print(f"{len(edits)} edit tasks deferred; the triggerer fired {fired} triggers; "
                  f"edit service served {stats.get('served')}")
        print(phases.table())
        print("docker stack: 1 passed, 0 failed")
        return 0
    except Skip as why:
        print(f"make test-docker skipped: {why}")
        return 0
    except BaseException:
        if compose is not None:
            print(compose.logs(), file=sys.stderr)
        print(phases.table())
        print("docker stack: 0 passed, 1 failed")
        raise
    finally:
        if compose is not None:
            with phases("down"):
                compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
                left = compose.containers()
                if left:
                    print(f"left behind: {left}", file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)
        engine.stop()
        if compose is not None:
            print(f"down: {phases.times.get('down', 0):.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=420, help="seconds for each wait (health, a run)")
    # one: two mapped instances queued together then go to different workers
    parser.add_argument("--concurrency", type=int, default=1, help="task processes per Celery worker")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
