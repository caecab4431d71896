"""Airflow's real services as processes: api-server, scheduler, dag-processor and triggerer.

What the docker compose stack runs in containers, started here as plain processes with
an isolated ``AIRFLOW_HOME`` (LocalExecutor, SQLite) so a test can show the DAGs work
outside ``dag.test()``: the scheduler queues and runs the tasks (each in its own process),
the triggerer runs the deferred triggers, and the test talks to the REST API only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: environment the pytest process carries for ``dag.test()`` that must not reach real services
_DROPPED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without its Airflow settings and connections (the suite's ``dag.test()``
    home, unit-test mode, ...) and without PYTHONPATH, plus ``extra``: what a separate Airflow starts from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k != "PYTHONPATH"}
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class AirflowStack:
    """The four Airflow 3 services on loopback, their logs under ``home/logs/<service>.log``.

    :param home: an empty folder: the ``AIRFLOW_HOME``.
    :param env: extra environment for every service (connections, storage keys, ...).
    :param local_settings: a file installed as ``airflow_local_settings.py`` (cluster policies).
    """

    def __init__(self, home: Path, env: Mapping[str, str] | None = None, *, local_settings: Path | None = None,
                 dags_folder: Path = REPO / "dags", python: str = sys.executable):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.airflow = str(Path(python).parent / "airflow")
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **clean_environment(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            # the log servers too: their fixed default ports may be taken by another Airflow on the machine
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # one secret shared by the services: the api-server checks the tokens the scheduler mints for tasks
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(home / "openlineage.jsonl"), "append": True}),
            **(env or {}),
        }
        if local_settings is not None:
            (home / "config").mkdir(parents=True, exist_ok=True)
            (home / "config" / "airflow_local_settings.py").write_text(local_settings.read_text())
        self._token: str | None = None

    # -- processes ---------------------------------------------------------------------
    def log_path(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def start(self) -> AirflowStack:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([self.airflow, "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
        for service in SERVICES:
            with self.log_path(service).open("wb") as log:  # each in its own process group: stop() ends its children
                self.procs[service] = subprocess.Popen([self.airflow, service], env=self.env, cwd=self.home,
                                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, timeout: float = 20) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # whatever is left of the group (task and trigger children too)
            proc.wait()

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs(self, tail: int = 4000) -> str:
        """The end of every service's log: what a failing test prints."""
        out = []
        for service in SERVICES:
            path = self.log_path(service)
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            out.append(f"===== {service} =====\n{text[-tail:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        dead = {name: proc.returncode for name, proc in self.procs.items() if proc.poll() is not None}
        if dead:
            raise RuntimeError(f"services exited: {dead}\n{self.logs()}")

    # -- REST API ----------------------------------------------------------------------
    def health(self) -> dict | None:
        try:
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 120) -> dict:
        """Until the api-server answers and the scheduler, triggerer and dag-processor heartbeat."""
        def healthy():
            self.check_alive()
            health = self.health()
            return health if health and all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")) else None
        return wait_for(healthy, timeout, "Airflow services healthy")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token is None:  # simple auth manager with all_admins: a token without credentials
            self._token = httpx.get(f"{self.url}/auth/token", timeout=10).json()["access_token"]
        response = httpx.request(method, f"{self.url}/api/v2/{path.lstrip('/')}", timeout=30,
                                 headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """Until the dag-processor has parsed and serialized ``dag_id`` (import errors fail at once)."""
        def parsed():
            self.check_alive()
            errors = self.api("GET", "importErrors")["import_errors"]
            if errors:
                raise AssertionError(f"DAG import errors: {errors}")
            try:
                return self.api("GET", f"dags/{dag_id}")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    return None
                raise
        return wait_for(parsed, timeout, f"DAG {dag_id} parsed")

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Unpause ``dag_id`` and trigger a run with ``conf``; returns its run id."""
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300,
                 on_poll: Callable[[], None] | None = None) -> str:
        """Until the run finishes; its final state. ``on_poll`` runs at every poll (to watch task states)."""
        def finished():
            self.check_alive()
            if on_poll is not None:
                on_poll()
            state = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None
        return wait_for(finished, timeout, f"run {run_id} finished", interval=1.0)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        entry = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                         params={"map_index": map_index, "deserialize": True})
        return entry["value"]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
