"""Airflow's services as local processes: ``make up`` / ``make down``, and the deployment tests' stack.

What the docker compose stack runs in containers, started as plain processes on loopback:
the api-server, scheduler, dag-processor and triggerer (and, for CeleryExecutor, Celery
workers), each in its own process group with its log under ``<home>/logs/services/``. The
scheduler queues and runs the tasks (each in its own process, writing task logs the UI shows),
the triggerer runs the deferred triggers, and everything else talks to the REST API.

``python -m airflow_image_catalog.tooling.stack up`` starts the services on ``$AIRFLOW_HOME``
(LocalExecutor on SQLite unless the environment says otherwise), waits until they are healthy
and the DAGs are parsed, unpauses the DAGs and prints where the UI is and how to sign in; the
processes go on in the background, their ids in ``<home>/stack.json``. ``down`` stops them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

#: the repository checkout this package was installed from in development (``pip install -e``)
REPO = Path(__file__).resolve().parents[3]
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: the parts of ``/api/v2/monitor/health`` that must say "healthy"
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
STATE_FILE = "stack.json"
#: settings ``make demo`` needs for ``airflow dags test`` that a real scheduler does not (the Makefile exports them)
_DAG_TEST_ONLY = ("AIRFLOW__OPERATORS__CATALOG_DEADLINE",)
#: settings of the stack's own that ``up`` leaves to the environment where it sets them
_USER_CHOICES = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
                 "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__PARALLELISM")
#: environment a test process carries for ``dag.test()`` that must not reach real services
_DROPPED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without its Airflow settings and connections (a test suite's ``dag.test()``
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


def worker_hostname() -> str:
    """``[core] hostname_callable`` for several Celery workers on one machine: each task instance records
    its worker's name (``CATALOG_WORKER_NAME``), as it would record each worker's host in production."""
    name = os.environ.get("CATALOG_WORKER_NAME")
    return f"{name}.{socket.gethostname()}" if name else socket.getfqdn()


def service_settings(home: Path, port: int, *, dags_folder: Path | None = None,
                     plugins_folder: Path | None = None) -> dict[str, str]:
    """The settings every service of one local stack shares (LocalExecutor on SQLite by default).

    Loopback only; fresh ports for the log servers (their fixed defaults may be taken by another Airflow
    on the machine); one JWT secret, so the api-server accepts the tokens the scheduler mints for tasks.
    """
    url = f"http://127.0.0.1:{port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder or REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(home / "openlineage" / "events.jsonl"), "append": True}),
    }


class AirflowStack:
    """Airflow's services on loopback, their logs under ``home/logs/services/<name>.log``.

    :param home: the ``AIRFLOW_HOME`` (created if missing).
    :param env: extra environment for every process (connections, storage keys, ...).
    :param settings: settings over the stack's own (another executor, database, ...).
    :param base_env: the environment the processes start from (default: :func:`clean_environment`), under
        the stack's own settings (:func:`service_settings`).
    :param local_settings: a file installed as ``airflow_local_settings.py`` (cluster policies).
    :param workers: extra processes, name -> (``airflow`` arguments, their own environment), such as
        Celery workers: ``{"worker-a": (["celery", "worker"], {"CATALOG_WORKER_NAME": "worker-a"})}``.
    """

    def __init__(self, home: Path, env: Mapping[str, str] | None = None, *, settings: Mapping[str, str] | None = None,
                 base_env: Mapping[str, str] | None = None, local_settings: Path | None = None,
                 port: int | None = None, dags_folder: Path | None = None,
                 workers: Mapping[str, tuple[Sequence[str], Mapping[str, str]]] | None = None,
                 python: str = sys.executable):
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.airflow = str(Path(python).parent / "airflow")
        self.commands: dict[str, tuple[list[str], dict[str, str]]] = {name: ([name], {}) for name in SERVICES}
        for name, (argv, extra) in (workers or {}).items():
            self.commands[name] = (list(argv), dict(extra))
        self.env = {**(clean_environment() if base_env is None else base_env),
                    **service_settings(self.home, self.port, dags_folder=dags_folder), **(settings or {}), **(env or {})}
        self.local_settings = local_settings
        self.pids: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._token: str | None = None
        self._auth: tuple[str, str] | None = None

    # -- processes ---------------------------------------------------------------------
    def log_path(self, service: str) -> Path:
        return self.home / "logs" / "services" / f"{service}.log"

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([self.airflow, "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")

    def start(self) -> AirflowStack:
        """Migrate the metadata DB, then start every process (each in its own process group)."""
        self.migrate()
        if self.local_settings is not None:
            (self.home / "config").mkdir(parents=True, exist_ok=True)
            (self.home / "config" / "airflow_local_settings.py").write_text(self.local_settings.read_text())
        self.log_path("x").parent.mkdir(parents=True, exist_ok=True)
        (self.home / "openlineage").mkdir(exist_ok=True)
        for name, (argv, extra) in self.commands.items():
            with self.log_path(name).open("ab") as log:  # the group: stop() ends the task and trigger children too
                proc = subprocess.Popen([self.airflow, *argv], env={**self.env, **extra}, cwd=self.home,
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            self.procs[name], self.pids[name] = proc, proc.pid
        return self

    def save(self) -> Path:
        """Record the processes and the URL in ``home/stack.json`` (for ``down`` and ``status``)."""
        path = self.home / STATE_FILE
        path.write_text(json.dumps({"url": self.url, "port": self.port, "pids": self.pids}, indent=2))
        return path

    @classmethod
    def attach(cls, home: Path) -> AirflowStack:
        """The stack ``up`` started in ``home`` (from its ``stack.json``), to stop it or call its API."""
        state = json.loads((Path(home) / STATE_FILE).read_text())
        stack = cls(home, base_env={}, port=state["port"])
        stack.pids = {name: int(pid) for name, pid in state["pids"].items()}
        return stack

    def alive(self) -> dict[str, int]:
        """The stack's processes still running (name -> pid)."""
        return {name: pid for name, pid in self.pids.items() if _running(pid, self.procs.get(name))}

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM every process group, then SIGKILL what is left of it after ``timeout``.

        The Task SDK puts each task runner in a process group of its own (``os.setpgid`` in its supervisor),
        so the services' groups do not hold them: their descendants are collected first, while the tree
        still links them to a service (a child whose parent died is reparented to init and lost from it),
        and their groups are signalled too. Otherwise a stack stopped mid-run leaves its running tasks behind.
        """
        groups = set(self.pids.values()) | {_group_of(pid) for pid in _descendants(self.pids.values())} - {None}
        for group in groups:
            _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (self.alive() or any(_group_exists(g) for g in groups)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for group in groups:
            _signal_group(group, signal.SIGKILL)  # whatever is left of each group (task and trigger children too)
        for proc in self.procs.values():
            proc.wait()
        state = self.home / STATE_FILE
        if state.exists():
            state.unlink()

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs(self, tail: int = 4000) -> str:
        """The end of every process's log: what a failing test prints."""
        out = []
        for name in self.commands:
            path = self.log_path(name)
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            out.append(f"===== {name} =====\n{text[-tail:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        dead = sorted(set(self.pids) - set(self.alive()))
        if dead:
            raise RuntimeError(f"services exited: {dead}\n{self.logs()}")

    # -- REST API ----------------------------------------------------------------------
    def health(self) -> dict | None:
        try:
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_healthy(self, timeout: float = 180) -> dict:
        """Until the api-server answers and the scheduler, triggerer and dag-processor heartbeat."""
        def healthy():
            self.check_alive()
            health = self.health()
            return health if health and all(
                health.get(part, {}).get("status") == "healthy" for part in HEALTH_PARTS) else None
        return wait_for(healthy, timeout, "Airflow services healthy", interval=1.0)

    def sign_in(self, username: str, password: str) -> None:
        """Use these credentials for the API (the simple auth manager's users); default: no credentials,
        which the simple auth manager answers with a token when ``simple_auth_manager_all_admins`` is on."""
        self._auth, self._token = (username, password), None

    def admin_password(self) -> str | None:
        """The password the simple auth manager generated for ``admin`` on first start."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text()).get("admin") if path.exists() else None

    def token(self) -> str:
        if self._token is None:
            if self._auth is None:
                response = httpx.get(f"{self.url}/auth/token", timeout=10)
            else:
                response = httpx.post(f"{self.url}/auth/token", timeout=10,
                                      json={"username": self._auth[0], "password": self._auth[1]})
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.url}/api/v2/{path.lstrip('/')}", timeout=30,
                                 headers={**(headers or {}), "Authorization": f"Bearer {self.token()}"}, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def import_errors(self) -> list[dict]:
        return self.api("GET", "importErrors")["import_errors"]

    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Until the dag-processor has parsed and serialized ``dag_id`` (import errors fail at once)."""
        def parsed():
            self.check_alive()
            errors = self.import_errors()
            if errors:
                raise AssertionError(f"DAG import errors: {errors}")
            try:
                return self.api("GET", f"dags/{dag_id}")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    return None
                raise
        return wait_for(parsed, timeout, f"DAG {dag_id} parsed", interval=1.0)

    def dag_ids(self) -> list[str]:
        return sorted(d["dag_id"] for d in self.api("GET", "dags", params={"limit": 100})["dags"])

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Unpause ``dag_id`` and trigger a run with ``conf``; returns its run id."""
        self.unpause(dag_id)
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

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """A task instance's log as the UI shows it (its messages, one a line)."""
        body = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                        params={"map_index": map_index, "full_content": True}, headers={"Accept": "application/json"})
        content = body["content"]
        if isinstance(content, str):
            return content
        lines = []
        for entry in content:
            if not isinstance(entry, dict):
                lines.append(str(entry))
                continue
            lines.append(entry.get("event", ""))
            # a failure's exception travels in error_detail; the UI shows it under the event, so do we
            lines += [f"{d.get('exc_type')}: {d.get('exc_value')}" for d in entry.get("error_detail") or []
                      if isinstance(d, dict)]
        return "\n".join(lines)

    def clear(self, dag_id: str, run_id: str, task_id: str, map_index: int, *, downstream: bool = True) -> list[dict]:
        """Clear one (mapped) task instance, as the UI's Clear does; returns what was cleared."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": [[task_id, map_index]],
                "include_downstream": downstream, "only_failed": False, "reset_dag_runs": True}
        return self.api("POST", f"dags/{dag_id}/clearTaskInstances", json=body)["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        entry = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                         params={"map_index": map_index, "deserialize": True})
        return entry["value"]


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, ...); None when gone.

    The name sits in parentheses and may hold spaces or ")" itself, so the split is at the last ")".
    """
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _running(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    fields = proc_stat(pid)
    if fields is None:
        return True
    try:  # a zombie, or a pid reused by something that is not Airflow, is not ours any more
        return fields[0] != "Z" and b"airflow" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _descendants(roots: Iterable[int]) -> set[int]:
    """Every live process below ``roots`` in the process tree (read from /proc; empty where there is none)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").glob("[0-9]*"):
        fields = proc_stat(entry.name)
        if fields is not None:  # else gone while we read
            children[int(fields[1])].append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:  # ended since the tree was read
        return None


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- the command line: make up / make down -------------------------------------------

def _up(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    if (home / STATE_FILE).exists():
        running = AirflowStack.attach(home)
        if running.alive():
            print(f"already running: {running.url} ({', '.join(running.alive())}); `make down` stops it")
            return 0
        (home / STATE_FILE).unlink()
    base = {k: v for k, v in os.environ.items() if k not in _DAG_TEST_ONLY}
    chosen = {k: v for k, v in os.environ.items() if k in _USER_CHOICES}
    stack = AirflowStack(home, base_env=base, settings=chosen, port=args.port)
    print(f"starting {', '.join(stack.commands)} on {home} (logs: {stack.log_path('*')})", flush=True)
    stack.start()
    stack.save()
    try:
        stack.wait_healthy(args.timeout)
        password = wait_for(stack.admin_password, 60, "the admin password generated")
        stack.sign_in("admin", password)
        wait_for(stack.dag_ids, args.timeout, "DAGs parsed", interval=1.0)
        for error in stack.import_errors():
            print(f"DAG import error in {error['filename']}: {error['stack_trace'].strip().splitlines()[-1]}")
        dags = stack.dag_ids()
        for dag_id in dags:
            stack.unpause(dag_id)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        stack.stop()
        raise
    plugins = [p["name"] for p in stack.api("GET", "plugins")["plugins"]]
    print(f"Airflow UI:    {stack.url}  (user admin, password {password};"
          f" also in {home / 'simple_auth_manager_passwords.json.generated'})")
    print(f"image catalog: {stack.url}/plugin/image-catalog  (plugins: {', '.join(plugins) or 'none'})")
    print(f"DAGs unpaused: {', '.join(dags)}")
    print(f"executor {stack.env['AIRFLOW__CORE__EXECUTOR']}, metadata DB "
          f"{stack.env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}; `make down` stops the services")
    return 0


def _down(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    if not (home / STATE_FILE).exists():
        print(f"no stack running on {home}")
        return 0
    stack = AirflowStack.attach(home)
    names = list(stack.alive())
    stack.stop()
    print(f"stopped {', '.join(names) or 'nothing (the services had exited)'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    if not (home / STATE_FILE).exists():
        print(f"no stack running on {home}")
        return 1
    stack = AirflowStack.attach(home)
    alive = stack.alive()
    print(f"{stack.url}: running {', '.join(alive) or 'nothing'}; health {json.dumps(stack.health())}")
    return 0 if set(alive) == set(stack.pids) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--home", default=os.environ.get("AIRFLOW_HOME", str(REPO / ".airflow")),
                        help="the Airflow home (default $AIRFLOW_HOME)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT", "8080")),
                        help="the api-server's port on 127.0.0.1 (default $UI_PORT or 8080)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for the services and DAGs")
    args = parser.parse_args(argv)
    return {"up": _up, "down": _down, "status": _status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
