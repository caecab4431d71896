"""Run a fault scenario end to end: inputs, faults, the first run, then reruns until nothing is retryable.

Two ways through the pipeline, one code path after them (:mod:`~airflow_image_catalog.tooling.reliability.invariants`):

- ``dag``: the real ``catalog_refresh`` DAG with ``dag.test()`` (discover -> cost_check -> edit ->
  quality_gate -> publish); a rerun is ``dag.test()`` of the same logical date, as clearing the run;
- ``chunk``: discovery and chunk manifests, then each chunk through ``ImageEditOperator.execute``
  (a deferral is served in-process by the operator's own trigger): the edit task's code path,
  without Airflow's per-task overhead, for the fast suite.

Faults come from the local edit service (:class:`~airflow_image_catalog.tooling.service.faults.FaultPlan`) and the S3
fault proxy (:class:`~airflow_image_catalog.tooling.s3.S3FaultProxy`), never from patching our code.
Every connection carries an API key the service checks, so the secrets scan has keys to look for.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_image_catalog.tooling.reliability.invariants import (
    Outcome,
    check_run,
    check_settled,
    collect,
    listing,
)
from airflow_image_catalog.tooling.reliability.scenarios import CONNECTION_EXTRAS, Scenario

RECIPE = {"version": 1, "name": "reliability_one_step", "output": {"format": "png"},
          "quality": {"profile": "preserve"}, "steps": [{
              "id": "brighten", "prompt": "Brighten the photo by about a third of a stop without clipping highlights.",
              "local": {"op": "exposure", "params": {"stops": 0.33}}}]}
LENIENT_PROFILE = "name: lenient\nexpectations:\n  - {metric: width, min: 1, why: reliability runs count calls}\n"
CONN_ID = "reliability_edit"
MAX_RERUNS = 3
_LOGICAL = itertools.count()


def next_logical_date() -> datetime:
    """A logical date no other run of this Airflow home used: every scenario is its own DAG run."""
    return datetime(2031, 1, 1, tzinfo=UTC) + timedelta(hours=next(_LOGICAL))


@contextmanager
def environment(updates: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``updates`` for the block (connections, S3 endpoint), restored after."""
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class PeakRss:
    """Peak resident memory of this process while the block runs (sampled at 50 Hz; ``now_mb`` any time).

    ``dag.test()`` runs every task in this process, so a DAG row's peak is its largest task's plus
    what the process already held (Airflow, the edit service and S3 server threads of the suite).
    """

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_bytes = interval, 0
        self._stop = threading.Event()

    @staticmethod
    def now_mb() -> float:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            try:
                rss = me.memory_info().rss
            except psutil.Error:
                rss = 0
            self.peak_bytes = max(self.peak_bytes, rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


@dataclass
class S3Lab:
    """The local S3 server behind the fault proxy: ``proxy`` injects, ``client`` (straight to moto) sets up."""

    proxy: Any
    client: Any

    def new_bucket(self, prefix: str = "rel") -> str:
        name = f"{prefix}-{secrets.token_hex(6)}"
        self.client.create_bucket(Bucket=name)
        return name

    def environment(self) -> dict[str, str]:
        from airflow_image_catalog.tooling.s3 import s3_environment

        return {**s3_environment(self.proxy.url), "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


@dataclass
class Lab:
    """Where scenarios run: the edit service, a scratch folder, optionally S3; ``mode`` ``dag`` or ``chunk``."""

    service: Any
    root: Path
    s3: S3Lab | None = None
    mode: str = "dag"


@dataclass
class ScenarioResult:
    """One row of the table, with the facts behind it."""

    name: str
    mode: str
    images: int
    first: dict[str, int]
    final: dict[str, int]
    calls: int
    max_calls_per_image: int
    duplicates: int
    lost: int
    ledger_rows: int
    paid_without_result: int
    reruns: int
    first_run_state: str
    peak_rss_mb: float
    wall_s: float
    reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    api_key: str = ""
    workspace: str = ""
    possibly_billed: int = 0  # ledger rows booked as possibly billed (an answer lost after the body was sent)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "api_key"}
        return {**data, "ok": self.ok}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def write_sources(folder: Path, count: int, *, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` distinct small product shots (a coloured box on white), as (name, PNG bytes).

    The image's index is written into its top row (one pixel per bit), so no two are alike: a
    repeat would be a result-cache hit and cost nothing, which is not what the runs measure.
    """
    import io

    import numpy as np
    from PIL import Image

    out = []
    for i in range(count):
        width, height = 48 + i % 7, 40 + i % 5
        pixels = np.full((height, width, 3), 255, np.uint8)
        color = ((37 * i + seed) % 200 + 20, (91 * i + 3 * seed) % 200 + 20, (53 * i + 7 * seed) % 200 + 20)
        pixels[height // 5: height * 4 // 5, width // 4: width * 3 // 4] = color
        pixels[0, :24] = [[0 if (i >> bit) & 1 else 255] * 3 for bit in range(24)]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        out.append((f"p{i:05d}.png", buf.getvalue()))
    return out


def connection_env(backend: str, url: str, key: str, extras: dict[str, Any]) -> dict[str, str]:
    """The scenario's ``image_edit`` connection as ``AIRFLOW_CONN_<ID>`` (the key in ``password``)."""
    host = f"{url}/v1" if backend.startswith("openai") else url
    conn = {"conn_type": "image_edit", "host": host, "password": key,
            "extra": {"backend": backend, **CONNECTION_EXTRAS, **extras}}
    if backend.startswith("openai"):
        conn["extra"].setdefault("model", "gpt-image-1.5")
    return {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}


@dataclass
class Setup:
    conf: dict[str, Any]
    workspace: str
    images: int


def prepare(scenario: Scenario, lab: Lab, folder: Path, *, images: int | None = None, seed: int = 0,
            chunk_size: int = 50) -> Setup:
    """Write the sources (file or S3), the recipe and a lenient quality profile; the DAG conf."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = write_sources(folder, images or scenario.images, seed=seed)
    recipe = folder / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    profile = folder / "lenient.yaml"
    profile.write_text(LENIENT_PROFILE)
    if scenario.storage == "s3":
        if lab.s3 is None:
            raise RuntimeError(f"scenario {scenario.name!r} needs the S3 lab")
        bucket = lab.s3.new_bucket()
        for name, data in sources:
            lab.s3.client.put_object(Bucket=bucket, Key=f"source/{name}", Body=data)
        source, workspace, published = (f"s3://{bucket}/{part}" for part in ("source", "work", "published"))
    else:
        (folder / "source").mkdir(exist_ok=True)
        for name, data in sources:
            (folder / "source" / name).write_bytes(data)
        source, workspace, published = (str(folder / part) for part in ("source", "work", "published"))
    conf = {"source": source, "workspace": workspace, "published": published, "recipe": str(recipe),
            "backend_conn_id": CONN_ID, "chunk_size": chunk_size, "min_pass_rate": 0.0, "max_failure_rate": 1.0,
            "quality_profile": str(profile), "deferrable": scenario.deferrable}
    return Setup(conf, workspace, len(sources))


# -- one run --------------------------------------------------------------------------------------


def catalog_refresh():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags["catalog_refresh"]


def run_dag(conf: dict[str, Any], logical: datetime) -> tuple[str, str]:
    """``dag.test()`` of ``catalog_refresh`` at ``logical`` (again: a rerun of the same run): (state, run key)."""
    from airflow_image_catalog.workspace.manifest import safe_run_key

    dagrun = catalog_refresh().test(logical_date=logical, run_after=logical, run_conf=conf)
    return str(dagrun.state), safe_run_key(dagrun.run_id)


def _execute_deferring(operator: Any) -> str:
    """``execute``, serving each deferral with the operator's own trigger in-process (as the triggerer would)."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_image_catalog.triggers.edit_jobs import first_event

    try:
        return operator.execute({})
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    while True:
        event = asyncio.run(first_event(trigger))
        try:
            return operator.execute_complete({}, event)
        except TaskDeferred as deferred:
            trigger = deferred.trigger


def run_chunks(conf: dict[str, Any], run_key: str) -> str:
    """Discovery (once per run) and every chunk through ``ImageEditOperator.execute``: ``success`` or ``failed``."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    run = WorkspaceLayout(conf["workspace"]).run(run_key)
    chunks = listing(run.chunks)
    if not chunks:
        chunks = write_chunk_manifests(discover_images(conf["source"]), run_root=run.root, run_key=run_key,
                                       chunk_size=int(conf["chunk_size"]))
    state = "success"
    for uri in chunks:
        try:
            edit_task(conf, uri)
        except AirflowFailException:
            state = "failed"
    return state


def edit_task(conf: dict[str, Any], chunk_uri: str) -> str:
    """One mapped edit task instance: ``ImageEditOperator.execute`` on ``chunk_uri``; its edit manifest URI."""
    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    operator = ImageEditOperator(task_id="edit", chunk_manifest_uri=chunk_uri, recipe=conf["recipe"],
                                 workspace=conf["workspace"], backend_conn_id=conf["backend_conn_id"],
                                 deferrable=conf["deferrable"], poll_interval=0.05,
                                 max_failure_rate=conf["max_failure_rate"])
    return _execute_deferring(operator)


def run_once(lab: Lab, conf: dict[str, Any], logical: datetime, run_key: str | None) -> tuple[str, str]:
    if lab.mode == "dag":
        return run_dag(conf, logical)
    key = run_key or f"reliability-{logical:%Y%m%dT%H}"
    return run_chunks(conf, key), key


def _apply_s3_faults(lab: Lab, scenario: Scenario) -> None:
    if lab.s3 is None:
        return
    lab.s3.proxy.reset()
    for method, kind, options in scenario.s3_faults:
        getattr(lab.s3.proxy, kind)(method, **options)


def _first_run_problems(scenario: Scenario, outcome: Outcome, state: str) -> list[str]:
    problems = []
    statuses = {k: v for k, v in outcome.statuses().items() if v}
    if scenario.expect_first is not None and statuses != scenario.expect_first:
        problems.append(f"first run ended {statuses}, expected {scenario.expect_first}")
    if scenario.reason:
        for record in outcome.records:
            if record.status != "edited" and not re.search(scenario.reason, record.error or ""):
                problems.append(f"{record.image_id}: reason {record.error!r} does not match {scenario.reason!r}")
    if scenario.first_run_fails != (state == "failed"):
        problems.append(f"first run ended {state}, expected {'failed' if scenario.first_run_fails else 'success'}")
    return problems


def run_scenario(scenario: Scenario, lab: Lab, *, images: int | None = None) -> ScenarioResult:
    """The scenario's first run with its faults, then reruns without them until nothing is retryable.

    Invariants are checked after every run (:func:`~airflow_image_catalog.tooling.reliability.invariants.check_run`) and
    once settled (:func:`~airflow_image_catalog.tooling.reliability.invariants.check_settled`); violations land in
    ``problems``, so one bad row does not hide the others.
    """
    state_ = lab.service.state
    state_.reset(config=True)
    key = f"sk-reliability-{scenario.backend}-{secrets.token_hex(12)}"
    state_.api_key = key
    state_.honour_idempotency = scenario.provider_idempotency
    env = connection_env(scenario.backend, lab.service.url, key, scenario.extras)
    if scenario.storage == "s3" and lab.s3 is not None:
        env |= lab.s3.environment()
    started = time.perf_counter()
    with environment(env), PeakRss() as rss:
        if scenario.storage == "s3":
            from airflow_image_catalog.storage.s3 import clear_client_cache

            clear_client_cache()
        setup = prepare(scenario, lab, lab.root / slug(scenario.name), images=images)
        logical = next_logical_date()
        state_.faults.set([dict(f) for f in scenario.faults])
        _apply_s3_faults(lab, scenario)
        first_state, run_key = run_once(lab, setup.conf, logical, None)
        state_.faults.set([])
        if lab.s3 is not None:
            lab.s3.proxy.reset()
        outcome = collect(setup.workspace, run_key, state_)
        first = dict(outcome.statuses())
        reasons = sorted({f"{r.status}: {r.error}" for r in outcome.records if r.error})
        problems = [f"first run: {p}" for p in check_run(outcome)] + _first_run_problems(scenario, outcome,
                                                                                           first_state)
        reruns = 0
        while reruns < MAX_RERUNS and (outcome.statuses().get("failed_retryable") or first_state == "failed"):
            reruns += 1
            first_state, _ = run_once(lab, setup.conf, logical, run_key)
            outcome = collect(setup.workspace, run_key, state_)
            problems += [f"rerun {reruns}: {p}" for p in check_run(outcome)]
        problems += [f"settled: {p}" for p in check_settled(outcome)]
    calls = outcome.calls_per_image()
    return ScenarioResult(
        name=scenario.name, mode=lab.mode, images=setup.images, first=first, final=dict(outcome.statuses()),
        calls=len(outcome.paid), max_calls_per_image=max(calls.values(), default=0),
        duplicates=outcome.duplicates, lost=len(outcome.lost), ledger_rows=outcome.ledger_rows,
        paid_without_result=len(outcome.paid) - outcome.produced, reruns=reruns, first_run_state=first_state,
        peak_rss_mb=rss.mb, wall_s=round(time.perf_counter() - started, 1), reasons=reasons, problems=problems,
        api_key=key, workspace=setup.workspace, possibly_billed=outcome.possibly_billed)


# -- the bad-input corpus -------------------------------------------------------------------------


@dataclass
class CorpusResult:
    """The corpus run: per-case problems (empty: every case got its outcome), and the run's figures."""

    result: ScenarioResult
    problems: list[str]


def run_corpus(lab: Lab, cases: list[Any], *, backend: str = "openai") -> CorpusResult:
    """Every corpus case as one source folder through one run (``backend``: ``openai`` at the service, or
    ``local``); each case's record checked against its expectation, plus the run's invariants."""
    from airflow_image_catalog.storage import read_json
    from airflow_image_catalog.tooling.reliability.corpus import check_outcome

    scenario = Scenario(f"bad-input corpus ({len(cases)} kinds, {backend})", backend=backend,
                        extras={"max_concurrency": 4})
    state_ = lab.service.state
    state_.reset(config=True)
    key = f"sk-reliability-corpus-{secrets.token_hex(12)}"
    state_.api_key = key
    env = connection_env(backend, lab.service.url, key, scenario.extras)
    started = time.perf_counter()
    folder = lab.root / slug(scenario.name)
    with environment(env), PeakRss() as rss:
        setup = prepare(scenario, lab, folder, images=1)
        for case in cases:
            (folder / "source" / case.filename).write_bytes(case.data)
        state, run_key = run_once(lab, setup.conf, next_logical_date(), None)
        outcome = collect(setup.workspace, run_key, state_)
    from airflow_image_catalog.storage import StorageError
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    try:
        ignored = read_json(WorkspaceLayout(setup.workspace).run(run_key).discovery)["ignored"]
    except StorageError:  # chunk mode writes no discovery.json: ask discovery again (it only reads)
        from airflow_image_catalog.pipeline.discovery.discover import discover_images

        ignored = discover_images(setup.conf["source"]).ignored
    records = {r.image_id: r for r in outcome.records}
    problems = check_outcome(cases, records, list(ignored))
    problems += check_run(outcome)
    if state != "success":
        problems.append(f"the run ended {state}: a bad input must not fail its chunk")
    result = ScenarioResult(
        name=scenario.name, mode=lab.mode, images=len(outcome.records), first=dict(outcome.statuses()),
        final=dict(outcome.statuses()), calls=len(outcome.paid),
        max_calls_per_image=max(outcome.calls_per_image().values(), default=0), duplicates=outcome.duplicates,
        lost=len(outcome.lost), ledger_rows=outcome.ledger_rows, paid_without_result=len(outcome.paid) - outcome.produced,
        reruns=0, first_run_state=state, peak_rss_mb=rss.mb, wall_s=round(time.perf_counter() - started, 1),
        reasons=sorted({f"{r.image_id}: {r.error}" for r in outcome.records if r.error}), problems=problems,
        api_key=key, workspace=setup.workspace, possibly_billed=outcome.possibly_billed)
    return CorpusResult(result, problems)
