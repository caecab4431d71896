"""``make bench``: the edit stage at scale against the local edit service, in figures.

One run prints a table (and writes it to ``$CATALOG_HOME/bench/throughput.json``):

- **throughput**: 1,000 distinct images through the local edit service, which adds 2 s to
  every edit and answers 429 beyond 600 edit requests a minute, enforced per second as OpenAI
  quantizes its limits (bursts of 10 at most, one more every 0.1 s). The edit stage runs as the DAG
  runs it: discovery, chunk manifests, then one process per mapped edit task running
  ``ImageEditOperator.execute``, 8 at a time (the edit task's ``max_active_tis_per_dag``). First
  with the DAG's default chunking (chunks that fill the 8 slots in whole waves: 8 of 125), then with
  fixed chunks of 50 (the old default: 20 tasks, 3 waves);
- **the peer**: the same 1,000 edits as a short asyncio script on the official openai SDK, paced at
  the account's rate (:mod:`~airflow_image_catalog.tooling.bench.peer`), against the same service,
  limit and latency: the DAG's default run is reported as a share of it; beside it the same script
  unpaced (what it loses to a quantized limit);
- **orchestration overhead**: CPU time of the task processes per image (the service is another
  process, so backend time is not in it), and wall time per image outside the backend call;
- **peak RSS** of the whole non-Airflow pipeline (discover, chunk, edit every chunk, publish) in a
  fresh process at 1,000 and 5,000 images, and of one edit task process;
- beside them, **one image per mapped task** (a sample through the real DAG with ``dag.test()``,
  projected to 1,000) and a **naive sequential loop** (a sample of synchronous ``edit`` calls,
  projected to 1,000). Projections are labelled as such.

Rate limits. A provider's limit is per account, while every edit task has its own client-side
limiter: give the connection ``requests_per_minute`` = account limit / the edit task's
parallelism (its ``max_active_tis_per_dag``, or the slots of an Airflow pool the edit tasks
share), here 600 / 8 = 75, and ``max_concurrency`` >= latency x rate + a margin.

Chunking. A task's share of the account rate is used only while that task runs. 1,000 images in
chunks of 50 are 20 tasks on 8 slots: two full waves and a third of 4 tasks, during which half
the account rate idles (and every chunk ends with a latency-long drain). With the chunk count a
multiple of the slots, ``chunk_size = ceil(images / slots)`` (125: one wave), no slot idles.

Process model. Airflow forks each task instance from a process that has Airflow imported; the
bench forks each task from a forkserver that has imported what the DAG file imports, and the
operator's ``execute`` imports the rest, as in Airflow. Child processes share a bytecode cache in
the system temp dir, as a deployed image has compiled bytecode (this venv has none: uv installs
without it and the Makefile exports ``PYTHONDONTWRITEBYTECODE``); the table shows what a task pays
without it. Airflow and every run live in a temp dir: the developer's ``.airflow`` is never used.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow_image_catalog.config.locations import catalog_home
from airflow_image_catalog.pipeline.discovery.chunking import MAX_MAPPED_CHUNKS, auto_chunk_size
from airflow_image_catalog.pipeline.discovery.discover import (
    Discovery,
    discover_images,
    write_chunk_manifests,
)
from airflow_image_catalog.storage.local import uri_to_path
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout, is_chunk_document

REPO = Path(__file__).resolve().parents[4]
MODULE = "airflow_image_catalog.tooling.bench.throughput"  # run as ``python -m`` for the child processes
ACCOUNT_RPM = 600
LATENCY_S = 2.0
EDIT_SLOTS = 8  # dags/catalog_refresh.py: the edit task's max_active_tis_per_dag (the DAG run reports it)
CONN_ID = "bench_edit"
API_KEY = "sk-bench-local"
MODEL = "gpt-image-1.5"
#: retries fast and often: a 429 is retried after the service's retry-after, never surfaced
RETRY = {"max_attempts": 8, "backoff_initial": 0.05, "backoff_max": 2.0, "backoff_jitter": 0.05}
#: one request per image, a prompt the service maps to a cheap exposure lift
RECIPE = {"version": 1, "name": "bench_one_step", "output": {"format": "png"}, "steps": [{
    "id": "brighten", "prompt": "Brighten the photo by about a third of a stop without clipping highlights.",
    "local": {"op": "exposure", "params": {"stops": 0.33}}}]}
LENIENT_PROFILE = "name: lenient\nexpectations:\n  - {metric: width, min: 16, why: bench}\n"
#: what a task process has before its execute: Airflow and what the DAG file imports
TASK_PRELOAD = ["airflow_image_catalog.operators.discover", "airflow_image_catalog.operators.image_edit", "airflow_image_catalog.operators.publish",
                "airflow_image_catalog.operators.quality_gate", "airflow_image_catalog.config.locations"]
#: what the edit path imports at run time (the bytecode warm-up, and the start-up probe)
RUNTIME_IMPORTS = ("airflow_image_catalog.pipeline.editing.task", "airflow_image_catalog.backends.openai_images", "airflow_image_catalog.backends.prepare",
                   "airflow_image_catalog.hooks.image_edit", "airflow_image_catalog.pipeline.publishing.publish", "airflow_image_catalog.pipeline.publishing.report", "httpx", "aiolimiter",
                   "tenacity", "anyio._backends._asyncio", "PIL.PngImagePlugin")
TARGETS = {"throughput_ratio": 0.95, "peer_ratio": 0.97, "overhead_ms": 20.0, "rss_ratio": 1.10}
#: the chunk size the DAG used before its chunking followed the slots, measured beside it
OLD_DEFAULT_CHUNK_SIZE = 50
#: compiled bytecode for the child processes, kept between runs (Python checks each file's source stamp)
BYTECODE_CACHE = Path(tempfile.gettempdir()) / "catalog-bench-pycache"


# -- environment, sources, the service --------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    def first(path: str, key: str) -> str:
        try:
            return next(line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines()
                        if line.startswith(key))
        except (OSError, StopIteration):
            return "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    return {"cores": os.cpu_count(), "ram_gib": round(int(mem_kb) / 2**20, 1) if mem_kb.isdigit() else None,
            "cpu": first("/proc/cpuinfo", "model name"), "python": platform.python_version(),
            "platform": platform.platform()}


def airflow_env(root: Path) -> dict[str, str]:
    """An Airflow home of the bench's own (SQLite) under ``root``, and the bytecode cache the children share."""
    return {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPERATORS__CATALOG_DEADLINE": "False",  # dag.test() cannot finish a run with deadlines (3.3.2)
        "CATALOG_HOME": str(root / "catalog"),
        "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
    }


@contextmanager
def environment(updates: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``updates`` (inherited by every child, the forkserver too), restored after."""
    saved = dict(os.environ)
    os.environ.update(updates)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def workdir(*, keep: bool = False) -> Iterator[Path]:
    """A temp dir for one bench run (sources, workspaces, Airflow home, logs), removed after unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def write_sources(folder: Path, count: int, first: int = 0, side: int = 64) -> Path:
    """``count`` small PNGs, each a differently coloured box on white: distinct bytes, so no cache hit or replay."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        image = Image.new("RGB", (side, side), "white")
        colour = (i % 241, (i // 241) % 241, 40 + (i // 241**2) % 200)
        image.paste(colour, (side // 4, side // 5, side * 3 // 4, side * 4 // 5))
        image.save(folder / f"p{i:06d}.png")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """The local edit service in its own process, so none of its CPU is counted as the tasks'."""

    def __init__(self, *, latency: float, rpm: int, enforce: bool, log_path: Path, startup_timeout: float = 60.0):
        self.args = ["--latency", str(latency), "--rpm", str(rpm)] + (["--enforce-rate-limit"] if enforce else [])
        self.log_path, self.startup_timeout = log_path, startup_timeout
        self.url = ""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServiceProcess:
        import httpx

        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "airflow_image_catalog.tooling.service", "--port", str(port), *self.args],
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"local edit service did not start on {self.url}:\n{_tail(self.log_path)}")
            try:
                self.stats()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stats(self) -> dict[str, Any]:
        from airflow_image_catalog.tooling.service.server import stats

        return stats(self.url)

    def reset(self) -> None:
        """Forget requests, work, the rate window and idempotency keys (the configuration stays)."""
        import httpx

        httpx.post(f"{self.url}/_service/reset", timeout=10).raise_for_status()


def connection(service_url: str, *, rpm: float = 0.0, concurrency: int = 8) -> str:
    """An ``openai`` image_edit connection to the service, as ``AIRFLOW_CONN_<ID>`` JSON."""
    return json.dumps({"conn_type": "image_edit", "host": f"{service_url}/v1", "password": API_KEY, "extra": {
        "backend": "openai", "model": MODEL, "requests_per_minute": rpm, "max_concurrency": concurrency, **RETRY}})


def backend_for(service_url: str, **settings: Any) -> Any:
    """The same backend without Airflow: the hook only turns a connection into this config."""
    from airflow_image_catalog.backends import build_backend

    extras = json.loads(connection(service_url, **settings))["extra"]
    return build_backend(SimpleNamespace(backend=extras.pop("backend"), base_url=f"{service_url}/v1",
                                         api_key=API_KEY, extras=extras))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not written)"


def _run_child(args: list[str], *, env: dict[str, str] | None, log_path: Path, what: str) -> float:
    """Run ``python <args>`` (this module's child modes, ``-c`` or ``-m airflow``), output in ``log_path``; its wall time."""
    started = time.perf_counter()
    with log_path.open("w") as out:
        proc = subprocess.run([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); {log_path}:\n{_tail(log_path)}")
    return time.perf_counter() - started


def startup_imports(env: dict[str, str], log_path: Path, *, bytecode: bool) -> float:
    """CPU seconds a fresh task spends importing what the edit path imports at run time.

    With ``bytecode`` this also fills the shared bytecode cache (Airflow and the runtime modules).
    """
    code = ("import time, importlib, airflow_image_catalog.operators.image_edit; t = time.process_time()\n"
            f"for name in {RUNTIME_IMPORTS!r}: importlib.import_module(name)\n"
            "print(time.process_time() - t)")
    child = dict(env)
    if not bytecode:
        child.pop("PYTHONPYCACHEPREFIX", None)
        child["PYTHONDONTWRITEBYTECODE"] = "1"
    _run_child(["-c", code], env=child, log_path=log_path, what="import probe")
    return float(log_path.read_text().split()[-1])


# -- one mapped edit task, in its own process -------------------------------------------------


class TimedBackend:
    """The task's backend with its ``aedit`` calls timed: what an image spends outside them is orchestration."""

    def __init__(self, backend: Any):
        self.backend, self.seconds = backend, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    async def aedit(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.backend.aedit(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class EditTask:
    """One mapped edit task instance: its chunk, its connection, and where it reports."""

    chunk_manifest_uri: str
    recipe: str
    workspace: str
    connection: str  # AIRFLOW_CONN_<ID> JSON, set in the task's environment
    result_path: str
    log_path: str


def run_edit_task(task: EditTask) -> None:
    """Body of a task process: ``ImageEditOperator.execute`` on one chunk, then its CPU, peak RSS and backend time.

    The process is forked for this task only, so its resource usage is this task's (start-up included).
    """
    started = time.perf_counter()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = task.connection
    with open(task.log_path, "ab") as log_file:  # the task's log, as Airflow keeps one per task instance
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    operator = ImageEditOperator(task_id="edit", chunk_manifest_uri=task.chunk_manifest_uri, recipe=task.recipe,
                                 workspace=task.workspace, backend_conn_id=CONN_ID)
    resolve, backends = operator.hook.get_backend, []

    def timed_backend(*args: Any, **kwargs: Any) -> TimedBackend:  # the task's own path; only edits are timed
        backends.append(TimedBackend(resolve(*args, **kwargs)))
        return backends[-1]

    operator.hook.get_backend = timed_backend
    manifest_uri = operator.execute({})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(task.result_path).write_text(json.dumps({
        "manifest_uri": manifest_uri, "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
        "backend_s": sum(b.seconds for b in backends), "wall_s": time.perf_counter() - started}))


def run_tasks(tasks: list[EditTask], slots: int) -> list[dict[str, Any]]:
    """Run ``tasks`` like mapped task instances: each in a fresh process, at most ``slots`` at once, in index order."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(TASK_PRELOAD)  # takes effect when the forkserver starts (first task)
    queue, running, reports = list(tasks), {}, []
    while queue or running:
        while queue and len(running) < slots:
            task = queue.pop(0)
            process = context.Process(target=run_edit_task, args=(task,), name=Path(task.chunk_manifest_uri).stem)
            process.start()
            running[process.sentinel] = (process, task)
        for sentinel in wait(list(running)):
            process, task = running.pop(sentinel)
            process.join()
            if process.exitcode != 0 or not Path(task.result_path).exists():
                for other, _ in running.values():
                    other.terminate()
                raise RuntimeError(f"edit task {process.name} failed (exit {process.exitcode}); "
                                   f"{task.log_path}:\n{_tail(Path(task.log_path))}")
            reports.append(json.loads(Path(task.result_path).read_text()))
    return reports


# -- the figures ------------------------------------------------------------------------------


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def records_of(manifest_uris: list[str]) -> list[Any]:
    from airflow_image_catalog.pipeline.publishing.publish import load_chunk_results

    return [record for result in load_chunk_results(manifest_uris) for record in result.edit.items]


def outcome(records: list[Any]) -> dict[str, Any]:
    """How the images ended, and the rate-limit errors that reached a task (an image failed with one)."""
    from airflow_image_catalog.workspace.manifest import ImageStatus

    failed = [r for r in records if r.status != ImageStatus.EDITED]
    return {"images": len(records), "edited": len(records) - len(failed), "failed": len(failed),
            "rate_limit_errors_in_tasks": sum(r.error_code in ("rate_limit_exceeded", "http_429") for r in failed),
            "failures": sorted({f"{r.error_code}: {r.error}" for r in failed})[:5]}


@dataclass
class Bench:
    """The run's temp root, the child environment and the sizes to run."""

    root: Path
    env: dict[str, str]
    recipe: str
    images: int
    slots: int
    account_rpm: int
    latency: float

    @property
    def task_rpm(self) -> float:
        return self.account_rpm / self.slots

    @property
    def task_concurrency(self) -> int:
        """In flight per task: latency x rate, plus a margin for the response tail."""
        return math.ceil(self.latency * self.task_rpm / 60) + 2

    def task_connection(self, service_url: str) -> str:
        return connection(service_url, rpm=self.task_rpm, concurrency=self.task_concurrency)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


def measure_throughput(bench: Bench, service: ServiceProcess, chunk_size: int, first: int) -> dict[str, Any]:
    """The edit stage of ``bench.images`` images as mapped tasks on ``bench.slots`` slots; the service's counts."""
    name = f"chunk{chunk_size}"
    service.reset()
    source = write_sources(bench.path(name, "source"), bench.images, first)
    workspace = str(bench.path(name, "work"))
    run_root = WorkspaceLayout(workspace).run(f"bench-{name}").root
    uris = write_chunk_manifests(discover_images(str(source)), run_root=run_root, run_key=f"bench-{name}",
                                 chunk_size=chunk_size)
    tasks = [EditTask(uri, bench.recipe, workspace, bench.task_connection(service.url),
                      str(bench.path(name, f"task-{i:05d}.json")), str(bench.path(name, f"task-{i:05d}.log")))
             for i, uri in enumerate(uris)]
    started = time.perf_counter()
    reports = run_tasks(tasks, bench.slots)
    wall = time.perf_counter() - started
    stats = service.stats()
    records = records_of([r["manifest_uri"] for r in reports])
    span = max(_when(r.finished_at) for r in records) - min(_when(r.started_at) for r in records)
    achieved = stats["performed"] / span * 60
    images = len(records)
    busy = sum(r["wall_s"] for r in reports)
    return {
        "chunk_size": chunk_size, "tasks": len(tasks), "slots": bench.slots, "waves": math.ceil(len(tasks) / bench.slots),
        "task_rpm": bench.task_rpm, "task_max_concurrency": bench.task_concurrency,
        **outcome(records),
        "performed": stats["performed"], "rate_limited_429": stats["rate_limited"], "duplicates": stats["duplicates"],
        "replayed": stats["replayed"], "http_attempts": sum(r.attempts for r in records),
        "first_request_to_last_response_s": round(span, 2), "wall_s": round(wall, 2),
        "achieved_rpm": round(achieved, 1), "ratio": round(achieved / bench.account_rpm, 4),
        "ideal_s": round((images - 1) * 60 / bench.account_rpm + bench.latency, 2),
        "slot_busy_share": round(busy / (bench.slots * wall), 3),
        "cpu_ms_per_image": round(sum(r["cpu_s"] for r in reports) / images * 1000, 2),
        "cpu_s_per_task": round(sum(r["cpu_s"] for r in reports) / len(reports), 3),
        "outside_backend_ms_per_image": round(
            (sum(r.seconds or 0 for r in records) - sum(r["backend_s"] for r in reports)) / images * 1000, 2),
        "task_peak_rss_mb": round(max(r["max_rss_mb"] for r in reports), 1),
        "task_wall_s": [round(r["wall_s"], 2) for r in reports],
    }


def measure_peer(bench: Bench, service: ServiceProcess, first: int, *, throttled: bool = True) -> dict[str, Any]:
    """The same edits with the peer script: the account's whole rate, no Airflow, no pipeline.

    ``throttled``: paced at the account's rate (the peer the DAG is compared with); else the semaphore alone.
    """
    from airflow_image_catalog.tooling.bench import peer

    service.reset()
    recipe = json.loads(Path(bench.recipe).read_text())
    name = "peer" if throttled else "peer-naive"
    sources = sorted(write_sources(bench.path(name, "source"), bench.images, first).glob("*.png"))
    in_flight = math.ceil(bench.latency * bench.account_rpm / 60) + 4  # latency x rate, plus a margin
    result = peer.run(f"{service.url}/v1", API_KEY, MODEL, recipe["steps"][0]["prompt"], sources, in_flight,
                      bench.account_rpm if throttled else None)
    stats = service.stats()
    return {**{k: round(v, 2) for k, v in result.items()}, "in_flight": in_flight, "throttled": throttled,
            "ratio": round(result["per_min"] / bench.account_rpm, 4), "performed": stats["performed"],
            "rate_limited_429": stats["rate_limited"], "duplicates": stats["duplicates"]}


def memory_run(source: str, root: str, service_url: str, recipe_path: str) -> dict[str, Any]:
    """The whole pipeline without Airflow, in this (fresh) process: discover, chunk, edit each chunk, publish.

    Returns the process's peak RSS and its RSS and high-water mark after each phase (MB).
    """
    from airflow_image_catalog.pipeline.editing.inline import edit_chunk
    from airflow_image_catalog.pipeline.publishing.publish import load_chunk_results, publish_run
    from airflow_image_catalog.recipes import load_recipe
    from airflow_image_catalog.storage import join_uri, read_json, write_json
    from airflow_image_catalog.workspace.manifest import ChunkManifest

    def mark() -> dict[str, float]:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}

    marks = {"imported": mark()}
    workspace, run_key = join_uri(root, "work"), "bench-memory"
    run = WorkspaceLayout(workspace).run(run_key)
    run_root = run.root
    discovery = discover_images(source)
    uris = write_chunk_manifests(discovery, run_root=run_root, run_key=run_key,
                                 chunk_size=auto_chunk_size(len(discovery.items), EDIT_SLOTS))
    marks["discovered"] = mark()
    recipe, edits = load_recipe(recipe_path), []
    for uri in uris:  # one chunk after another, each with its own backend, as one task each
        chunk = ChunkManifest.from_dict(read_json(uri))
        manifest = edit_chunk(chunk, recipe, backend_for(service_url, concurrency=8), run_root=run_root,
                              workspace=workspace)
        edits.append(write_json(run.edit(chunk.chunk_index), manifest.to_dict()))
    marks["edited"] = mark()
    results = load_chunk_results(edits)
    marks["loaded"] = mark()  # every edit manifest of the run, as publish_run takes them
    airflow_before = "airflow" in sys.modules
    report = publish_run(results, published_root=join_uri(root, "published"), workspace=workspace,
                         run_root=run_root, run={"dag_id": "bench", "run_id": run_key, "task_id": "publish"})
    marks["published"] = mark()
    return {"images": len(discovery.items), "chunks": len(uris), "edited": report["counts"]["edited"],
            "published": report["counts"]["published"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "marks": marks,
            "airflow_imported_by_publish": "airflow" in sys.modules and not airflow_before}


def measure_memory(bench: Bench, service: ServiceProcess, count: int, first: int) -> dict[str, Any]:
    source = write_sources(bench.path(f"memory{count}", "source"), count, first)
    out = bench.path(f"memory{count}", "result.json")
    wall = _run_child(["-m", MODULE, "--memory-run", str(source), "--service-url", service.url,
                       "--recipe", bench.recipe, "--result", str(out)],
                      env=bench.env, log_path=bench.path(f"memory{count}", "run.log"), what=f"memory run ({count})")
    return {**json.loads(out.read_text()), "wall_s": round(wall, 1)}


def mapping_limit(count: int, run_root: str) -> tuple[str, str]:
    """What discovery says to ``count`` images at one image per mapped task: (short, in full).

    Only a refusal is asked of ``write_chunk_manifests`` (it checks before writing anything).
    """
    from airflow_image_catalog.workspace.manifest import SourceItem

    if count <= MAX_MAPPED_CHUNKS:
        return (f"{count} mapped instances, within max_map_length {MAX_MAPPED_CHUNKS}",
                f"{count} chunks of 1 are within Airflow's max_map_length of {MAX_MAPPED_CHUNKS}")
    items = [SourceItem(f"p{i}", f"file:///nowhere/p{i}.png", "0" * 64, 0) for i in range(count)]
    try:
        write_chunk_manifests(Discovery("file:///nowhere", items), run_root=run_root, run_key="limit", chunk_size=1)
    except ValueError as exc:
        return f"refused: {count} mapped tasks > max_map_length {MAX_MAPPED_CHUNKS}", str(exc)
    return "accepted", "accepted"  # pragma: no cover - discovery refuses more chunks than Airflow maps


def dag_run(conf_path: str) -> dict[str, Any]:
    """``dag.test()`` of catalog_refresh with the conf in ``conf_path``; the run's and its task instances' times."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags["catalog_refresh"]
    started = time.perf_counter()
    dagrun = dag.test(run_conf=json.loads(Path(conf_path).read_text()))
    wall = time.perf_counter() - started
    with create_session() as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.start_date, TaskInstance.end_date, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dagrun.run_id)).all()
    edits = [(start.timestamp(), end.timestamp()) for task_id, start, end, _ in rows if task_id == "edit" and end]
    return {"state": str(dagrun.state), "run_s": round(wall, 2), "edit_slots": dag.get_task("edit").max_active_tis_per_dag,
            "edit_tasks": len(edits), "edit_task_mean_s": round(sum(e - s for s, e in edits) / max(len(edits), 1), 3),
            "edit_phase_s": round(max(e for _, e in edits) - min(s for s, _ in edits), 2) if edits else 0.0,
            "failed_tasks": sorted({task_id for task_id, *_, state in rows if state not in ("success", "skipped")})}


def measure_dag(bench: Bench, service: ServiceProcess, count: int, chunk_size: int, first: int) -> dict[str, Any]:
    """A sample through the real DAG (``dag.test()``, tasks one after another in one process)."""
    name = f"dag-chunk{chunk_size}"
    service.reset()
    source = write_sources(bench.path(name, "source"), count, first)
    profile = bench.path("lenient.yaml")
    profile.write_text(LENIENT_PROFILE)
    conf = {"source": str(source), "workspace": str(bench.path(name, "work")),
            "published": str(bench.path(name, "published")), "recipe": bench.recipe, "backend_conn_id": CONN_ID,
            "chunk_size": chunk_size, "min_pass_rate": 0, "quality_profile": str(profile)}
    conf_path = bench.path(name, "conf.json")
    conf_path.write_text(json.dumps(conf))
    out = bench.path(name, "result.json")
    env = {**bench.env, f"AIRFLOW_CONN_{CONN_ID.upper()}": bench.task_connection(service.url)}
    process_s = _run_child(["-m", MODULE, "--dag-run", str(conf_path), "--result", str(out)], env=env,
                           log_path=bench.path(name, "run.log"), what=f"catalog_refresh dag.test (chunk_size {chunk_size})")
    result = json.loads(out.read_text())
    if result["state"] != "success" or result["failed_tasks"]:
        raise RuntimeError(f"catalog_refresh (chunk_size {chunk_size}) ended {result['state']}, failed tasks "
                           f"{result['failed_tasks']}; log {bench.path(name, 'run.log')}")
    runs = uri_to_path(WorkspaceLayout(str(bench.path(name, "work"))).runs)
    edits = (uri_to_path(RunLayout(str(run)).edits) for run in runs.iterdir())
    records = records_of(sorted(str(p) for folder in edits for p in folder.glob("*.json") if is_chunk_document(str(p))))
    stats = service.stats()
    return {**result, "chunk_size": chunk_size, "process_s": round(process_s, 1), **outcome(records),
            "image_mean_s": round(sum(r.seconds or 0 for r in records) / max(len(records), 1), 3),
            "performed": stats["performed"], "duplicates": stats["duplicates"], "rate_limited_429": stats["rate_limited"]}


def measure_sequential(bench: Bench, service: ServiceProcess, count: int, first: int) -> dict[str, Any]:
    """The naive way: one synchronous ``edit`` call after another."""
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.recipes import load_recipe

    service.reset()
    source = write_sources(bench.path("sequential"), count, first)
    recipe, backend = load_recipe(bench.recipe), backend_for(service.url)
    started = time.perf_counter()
    for path in sorted(source.glob("*.png")):
        backend.edit(path.read_bytes(), recipe, ImageContext(path.stem, str(source), recipe.recipe_dir))
    wall = time.perf_counter() - started
    backend.transport.close()
    stats = service.stats()
    return {"images": count, "wall_s": round(wall, 2), "per_image_s": round(wall / count, 3),
            "performed": stats["performed"], "duplicates": stats["duplicates"]}


# -- the table --------------------------------------------------------------------------------


def _row(figure: str, value: str, how: str, target: str = "", ok: bool | None = None) -> dict[str, Any]:
    return {"figure": figure, "value": value, "target": target, "result": {True: "pass", False: "MISS"}.get(ok, ""),
            "how": how}


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: every figure, its target where the issue sets one, and whether it was measured or projected."""
    n, rpm = result["config"]["images"], result["config"]["account_rpm"]
    runs = [run for key in ("dag_default", "fixed") if (run := result["throughput"].get(key))]
    default_size = result["config"]["dag_chunk_size"]
    rows = []
    for run in runs:
        label = " = DAG default" if run["chunk_size"] == default_size else ""
        rows.append(_row(f"throughput, {n} images, chunk {run['chunk_size']}{label} ({run['tasks']} tasks / "
                         f"{run['slots']} slots, {run['waves']} wave{'s' if run['waves'] > 1 else ''})",
                         f"{run['ratio']:.3f} x limit ({run['achieved_rpm']:.0f}/min over "
                         f"{run['first_request_to_last_response_s']:.1f} s)", "measured",
                         f">= {TARGETS['throughput_ratio']}", run["ratio"] >= TARGETS["throughput_ratio"]))
    if (peer := result.get("peer")) and (default := result["throughput"].get("dag_default")):
        rows.append(_row(f"peer: {peer['images']} edits, asyncio + official openai SDK ({peer['in_flight']} in flight, "
                         f"paced at the limit)", f"{peer['ratio']:.3f} x limit ({peer['per_min']:.0f}/min over "
                         f"{peer['wall_s']:.1f} s, {peer['failed']} failed, {peer['rate_limited_429']} 429s)", "measured"))
        if naive := result.get("peer_naive"):
            rows.append(_row(f"  the same script unpaced (semaphore only, {naive['in_flight']} in flight)",
                             f"{naive['ratio']:.3f} x limit ({naive['failed']} of {naive['images']} failed, "
                             f"{naive['rate_limited_429']} 429s)", "measured"))
        rows.append(_row("DAG default vs the peer, same run", f"{default['achieved_rpm'] / peer['per_min']:.3f} x peer",
                         "measured", f">= {TARGETS['peer_ratio']}",
                         default["achieved_rpm"] / peer["per_min"] >= TARGETS["peer_ratio"]))
    rows.append(_row("rate-limit errors reaching a task / images failed", " / ".join(
        str(sum(r[k] for r in runs)) for k in ("rate_limit_errors_in_tasks", "failed")), "measured", "0 / 0",
        not any(r["rate_limit_errors_in_tasks"] or r["failed"] for r in runs)))
    rows.append(_row("429s answered by the service (retried, see note)", str(sum(r["rate_limited_429"] for r in runs)),
                     "measured"))
    rows.append(_row("edits paid twice (service duplicates)", str(sum(r["duplicates"] for r in runs)), "measured",
                     "0", not any(r["duplicates"] for r in runs)))
    for run in runs:
        rows.append(_row(f"orchestration CPU per image, chunk {run['chunk_size']} (task processes, no backend)",
                         f"{run['cpu_ms_per_image']:.1f} ms ({run['cpu_s_per_task']:.2f} s per task)", "measured",
                         f"<= {TARGETS['overhead_ms']:.0f} ms", run["cpu_ms_per_image"] <= TARGETS["overhead_ms"]))
    if runs:
        rows.append(_row("wall time per image outside the backend call", ", ".join(
            f"{r['outside_backend_ms_per_image']:.0f} ms (chunk {r['chunk_size']})" for r in runs), "measured"))
    if startup := result.get("startup"):
        rows.append(_row("task start-up imports, with / without bytecode", " / ".join(
            f"{startup[key]:.2f} s" for key in ("with_bytecode_s", "without_bytecode_s") if key in startup)
            + " CPU per task", "measured"))
    if memory := result.get("memory"):
        small, large = memory["sizes"][0], memory["sizes"][-1]
        rows.append(_row(f"peak RSS, whole pipeline, {small} vs {large} images",
                         f"{memory[str(small)]['peak_rss_mb']:.0f} vs {memory[str(large)]['peak_rss_mb']:.0f} MB "
                         f"(x{memory['ratio']:.3f})", "measured", f"<= x{TARGETS['rss_ratio']:.2f}",
                         memory["ratio"] <= TARGETS["rss_ratio"]))
    if runs:
        rows.append(_row("peak RSS, one edit task process", ", ".join(
            f"{r['task_peak_rss_mb']:.0f} MB ({r['chunk_size']} images)" for r in runs), "measured"))
    if runs:
        best = runs[0]
        rows.append(_row(f"{n} images as chunked mapped tasks (chunk {best['chunk_size']})",
                         f"{best['first_request_to_last_response_s']:.0f} s", "measured"))
    if per_image := result.get("per_image_tasks"):
        one, chunked = per_image["chunk_size_1"], per_image["chunked"]
        rows.append(_row(f"{n} images, one image per mapped task, {per_image['slots']} slots",
                         f">= {per_image['projected_1000_s']:.0f} s ({per_image['projected_ratio']:.2f} x limit)",
                         "projected"))
        rows.append(_row(f"  sample: {one['images']} images, chunk_size 1, dag.test",
                         f"{one['edit_tasks']} edit tasks, {one['edit_task_mean_s']:.2f} s each "
                         f"(Airflow in-process overhead {per_image['airflow_task_overhead_s']:.2f} s)", "measured"))
        rows.append(_row(f"  same sample, chunk_size {chunked['chunk_size']}, dag.test",
                         f"{chunked['edit_tasks']} edit task, {chunked['edit_phase_s']:.1f} s "
                         f"({chunked['edit_phase_s'] / chunked['images']:.2f} s per image; chunk_size 1: "
                         f"{one['edit_phase_s'] / one['images']:.2f})", "measured"))
        for count, (short, _) in per_image["mapping"].items():
            rows.append(_row(f"  {count} images, one per task", short, "checked"))
    if sequential := result.get("sequential"):
        rows.append(_row(f"{n} images, naive sequential loop", f"{sequential['per_image_s'] * n:.0f} s "
                         f"({60 / sequential['per_image_s'] / rpm:.2f} x limit)", "projected"))
        rows.append(_row(f"  sample: {sequential['images']} synchronous edit calls",
                         f"{sequential['per_image_s']:.2f} s per image", "measured"))
    rows.append(_row("whole bench wall time", f"{result['bench_wall_s']:.0f} s", "measured"))
    return rows


def render(result: dict[str, Any]) -> str:
    m, c = result["machine"], result["config"]
    head = (f"edit stage on the local edit service: {c['latency_s']:g} s per edit, {c['account_rpm']} requests/min "
            f"{'enforced' if c['enforce_rate_limit'] else 'not enforced'}; each task's connection "
            f"{c['task_rpm']:g}/min, max_concurrency {c['task_max_concurrency']}\n"
            f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, {m['platform']}")
    rows = result["figures"]
    widths = [max(len(r[k]) for r in rows) for k in ("figure", "value", "target", "result")]
    lines = [head, "", f"{'figure':<{widths[0]}}  {'value':<{widths[1]}}  {'target':<{widths[2]}}  "
             f"{'':<{widths[3]}}  how"]
    lines.append("-" * (sum(widths) + 20))
    lines += [f"{r['figure']:<{widths[0]}}  {r['value']:<{widths[1]}}  {r['target']:<{widths[2]}}  "
              f"{r['result']:<{widths[3]}}  {r['how']}" for r in rows]
    lines += ["", *result["notes"]]
    return "\n".join(lines)


def notes(result: dict[str, Any]) -> list[str]:
    """What the figures mean, in the run's own numbers."""
    config, out = result["config"], []
    default, fixed = result["throughput"].get("dag_default"), result["throughput"].get("fixed")
    if default:
        out.append(f"- DAG default: chunks of {default['chunk_size']} (chunk_size empty: the chunk count a multiple of "
                   f"the {default['slots']} edit slots, pipeline/discovery/chunking.py), {default['tasks']} tasks in "
                   f"{default['waves']} wave{'s' if default['waves'] > 1 else ''}, slots busy "
                   f"{default['slot_busy_share']:.0%}; what is left is start-up, pacing jitter and the last "
                   f"{config['latency_s']:g} s response. At the limit {default['images']} edits take "
                   f"{default['ideal_s']:.1f} s. In production, also give each connection requests_per_minute = "
                   "account limit / slots.")
    if fixed:
        out.append(f"- chunk {fixed['chunk_size']} (the old default): {fixed['tasks']} tasks on {fixed['slots']} slots "
                   f"run in {fixed['waves']} waves; the slots were busy {fixed['slot_busy_share']:.0%} of the time, "
                   f"and an idle slot's share of the rate ({fixed['task_rpm']:g}/min) is lost; each chunk also ends "
                   f"with a {config['latency_s']:g} s drain.")
    if peer := result.get("peer"):
        out.append(f"- the peer keeps no state, cache or manifests; one process, one event loop, one throttle at the "
                   f"account's rate (a bucket of two, the edit tasks' rule), and its SDK retries 429s itself: {peer['ratio']:.3f} x the limit, "
                   f"{peer['rate_limited_429']} 429s. The service quantizes the limit as OpenAI does (bursts of "
                   f"{math.ceil(config['account_rpm'] / 60)} at most, one more every {60 / config['account_rpm']:.2f} s), "
                   "so no client passes 1.0 x for long; at the limit the last response ends the run "
                   f"{config['latency_s']:g} s after the last request.")
    if naive := result.get("peer_naive"):
        out.append(f"- unpaced, the same script lost {naive['failed']} of {naive['images']} images: every refused "
                   "request is retried after the same retry-after-ms (the SDK adds no jitter to it), the herd is "
                   "refused again, and requests run out of their 8 retries.")
    runs = [run for run in (default, fixed) if run]
    if any(run["rate_limited_429"] for run in runs):
        out.append("- 429s: the slots' limiters each pace limit/slots, independently, with a burst of 2; when "
                   "their bursts coincide (task start-ups, late wake-ups caught up) the service's one-second share "
                   "is exceeded. The client waited the retry-after-ms and retried, so no image failed.")
    if default and fixed and default["tasks"] != fixed["tasks"]:
        cpu = {run["tasks"]: run["cpu_ms_per_image"] * run["images"] / 1000 for run in runs}
        (t1, c1), (t2, c2) = cpu.items()
        per_task = (c1 - c2) / (t1 - t2)
        per_image = (c2 - t2 * per_task) / fixed["images"] * 1000
        out.append(f"- task CPU ~ {per_task:.2f} s per task (fork, runtime imports, connection and backend set-up) + "
                   f"{per_image:.1f} ms per image (fitted to the two runs): bigger chunks amortise the first.")
    if memory := result.get("memory"):
        phases = "; ".join(f"{size}: " + ", ".join(f"{phase} {v['VmRSS']:.0f}" for phase, v in
                                                  memory[str(size)]["marks"].items()) for size in memory["sizes"])
        out.append(f"- memory runs have no latency and no rate limit (memory does not depend on them); RSS after each "
                   f"phase, MB: {phases}.")
        if any(memory[str(size)].get("airflow_imported_by_publish") for size in memory["sizes"]):
            out.append("- publish_run imported Airflow in the memory run (the same at every size, part of 'published').")
    if (per_image := result.get("per_image_tasks")) and per_image["chunk_size_1"]["edit_slots"] != config["slots"]:
        out.append(f"- NOTE: the DAG's edit task now has max_active_tis_per_dag = "
                   f"{per_image['chunk_size_1']['edit_slots']}, the bench ran {config['slots']} slots (--slots).")
    if per_image:
        out.append("- one image per task: dag.test runs task instances one after another in one process; the "
                   f"projection ({per_image['projection']}) assumes all slots busy and leaves out executor start-up "
                   "and scheduling per task: a lower bound on the time.")
    out.append("- projected = measured on the sample and scaled linearly; every other figure is measured in this run.")
    return out


# -- main -------------------------------------------------------------------------------------


def per_image_tasks(bench: Bench, service: ServiceProcess, args: argparse.Namespace, first: int) -> dict[str, Any]:
    """One image per mapped task through the real DAG, and the same sample chunked; projected to ``args.images``."""
    _run_child(["-m", "airflow", "db", "migrate"], env=bench.env, log_path=bench.path("db-migrate.log"),
               what="airflow db migrate")
    one = measure_dag(bench, service, args.dag_images, 1, first)
    chunked = measure_dag(bench, service, args.dag_images, args.dag_images, first + args.dag_images)
    per_task = one["edit_task_mean_s"]
    projected = math.ceil(args.images / args.slots) * per_task  # every slot busy, no executor or scheduling delay
    large = max(args.memory_sizes)
    return {"chunk_size_1": one, "chunked": chunked, "slots": args.slots,
            "airflow_task_overhead_s": round(per_task - one["image_mean_s"], 3),
            "projected_1000_s": round(projected, 1), "projected_ratio": round(args.images / projected * 60 / args.rpm, 3),
            "projection": f"ceil({args.images} / {args.slots}) x {per_task:.2f} s mean edit task",
            "mapping": {str(count): mapping_limit(count, str(bench.path("limit"))) for count in (args.images, large)}}


def memory_figures(bench: Bench, service: ServiceProcess, sizes: list[int]) -> dict[str, Any]:
    """Peak RSS per size, each size in its own fresh process (run side by side: RSS does not depend on speed)."""
    from concurrent.futures import ThreadPoolExecutor

    firsts = [sum(sizes[:i]) for i in range(len(sizes))]
    with ThreadPoolExecutor(len(sizes)) as pool:
        runs = list(pool.map(lambda size, first: measure_memory(bench, service, size, first), sizes, firsts))
    memory: dict[str, Any] = {"sizes": sizes, **{str(size): run for size, run in zip(sizes, runs, strict=True)}}
    memory["ratio"] = round(runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"], 4)
    memory["service_duplicates"] = service.stats()["duplicates"]
    return memory


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase, one after another, except the memory runs, which overlap only the latency-bound sequential loop."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    say = (lambda *a, **k: None) if args.quiet else print
    with workdir(keep=args.keep_temp) as root, environment(airflow_env(root)):
        if args.keep_temp:
            say(f"keeping the run's files and logs in {root}", flush=True)
        (root / "airflow").mkdir()
        recipe = root / "bench_one_step.json"
        recipe.write_text(json.dumps(RECIPE))
        env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
        bench = Bench(root, env, str(recipe), args.images, args.slots, args.rpm, args.latency)
        sizes = sorted(args.memory_sizes)
        result: dict[str, Any] = {"machine": machine(), "config": {
            "images": args.images, "account_rpm": args.rpm, "latency_s": args.latency, "enforce_rate_limit": True,
            "slots": args.slots, "task_rpm": bench.task_rpm, "task_max_concurrency": bench.task_concurrency,
            "dag_chunk_size": args.chunk_size or auto_chunk_size(args.images, args.slots),
            "fixed_chunk_size": args.compare_chunk_size,
            "memory_sizes": sizes}}
        say("warming the bytecode cache and measuring task start-up imports ...", flush=True)
        startup_imports(env, root / "imports-warm.log", bytecode=True)  # fills the cache where it is cold
        result["startup"] = {"with_bytecode_s": startup_imports(env, root / "imports-cached.log", bytecode=True)}
        if not args.skip_startup_probe:
            result["startup"]["without_bytecode_s"] = startup_imports(env, root / "imports-source.log", bytecode=False)
        with ServiceProcess(latency=args.latency, rpm=args.rpm, enforce=True, log_path=root / "service.log") as service:
            plans = [("dag_default", result["config"]["dag_chunk_size"])]
            if not args.skip_fixed_chunking:
                plans.append(("fixed", args.compare_chunk_size))
            result["throughput"] = {}
            for index, (key, chunk_size) in enumerate(plans):
                say(f"throughput: {args.images} images in chunks of {chunk_size} on {args.slots} slots ...", flush=True)
                result["throughput"][key] = measure_throughput(bench, service, chunk_size, first=index * args.images)
            first = len(plans) * args.images
            say(f"the peer: {args.images} edits with asyncio and the official openai SDK ...", flush=True)
            result["peer"] = measure_peer(bench, service, first)
            first += args.images
            if not args.skip_naive_peer:
                say("the same peer unpaced (semaphore only) ...", flush=True)
                result["peer_naive"] = measure_peer(bench, service, first, throttled=False)
                first += args.images
            say(f"peak RSS at {' and '.join(map(str, sizes))} images (no latency, no rate limit), beside a naive "
                f"sequential loop of {args.sequential} images ...", flush=True)
            with ServiceProcess(latency=0, rpm=10**9, enforce=False, log_path=root / "service-memory.log") as fast, \
                    ThreadPoolExecutor(1) as background:
                memory = background.submit(memory_figures, bench, fast, sizes)
                result["sequential"] = measure_sequential(bench, service, args.sequential, first)
                result["memory"] = memory.result()
            if not args.skip_dag:
                say(f"one image per mapped task: {args.dag_images} images through catalog_refresh (dag.test) ...",
                    flush=True)
                result["per_image_tasks"] = per_image_tasks(bench, service, args, first + args.sequential)
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    result["figures"] = figures(result)
    result["notes"] = notes(result)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    sizes = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the throughput runs")
    parser.add_argument("--latency", type=float, default=LATENCY_S, help="seconds the service adds to every edit")
    parser.add_argument("--rpm", type=int, default=ACCOUNT_RPM, help="the account's edit requests per minute (enforced)")
    parser.add_argument("--slots", type=int, default=EDIT_SLOTS, help="edit task instances at once")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="the DAG run's chunk size (default: the DAG's, chunks that fill the slots)")
    parser.add_argument("--compare-chunk-size", type=int, default=OLD_DEFAULT_CHUNK_SIZE,
                        help="a fixed chunk size measured beside the default (the old default, 50)")
    parser.add_argument("--skip-fixed-chunking", action="store_true", help="run only the DAG's default chunking")
    parser.add_argument("--skip-naive-peer", action="store_true", help="skip the unpaced peer script")
    parser.add_argument("--memory-sizes", type=sizes, default=[1000, 5000], help="pipeline sizes for peak RSS")
    parser.add_argument("--sequential", type=int, default=10, help="images in the sequential loop sample")
    parser.add_argument("--dag-images", type=int, default=16, help="images in the one-image-per-task DAG sample")
    parser.add_argument("--skip-dag", action="store_true", help="skip the Airflow (dag.test) runs")
    parser.add_argument("--skip-startup-probe", action="store_true", help="skip timing a task's imports without bytecode")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default $CATALOG_HOME/bench/throughput.json)")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    parser.add_argument("--keep-temp", action="store_true", help="keep the run's files and logs (temp dir)")
    # internal: the child processes of a bench run
    parser.add_argument("--memory-run", metavar="SOURCE", help=argparse.SUPPRESS)
    parser.add_argument("--dag-run", metavar="CONF", help=argparse.SUPPRESS)
    parser.add_argument("--service-url", help=argparse.SUPPRESS)
    parser.add_argument("--recipe", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_run:
        child = memory_run(args.memory_run, str(args.result.parent), args.service_url, args.recipe)
        args.result.write_text(json.dumps(child))
        return 0
    if args.dag_run:
        args.result.write_text(json.dumps(dag_run(args.dag_run)))
        return 0
    result = run(args)
    out = args.out or catalog_home() / "bench" / "throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
