"""Randomised chaos: many runs, each with a random fault mix and random SIGKILLs of the edit task
processes, each followed by reruns until every image is done; the invariants hold in all of them.

Seeded (``--seed``) and bounded: a run has 5-10 images in chunks of 3, faults drawn from the
matrix's kinds with small counts, every chunk's task process killed with probability
``kill_rate`` at a random moment while it works (the service adds a little latency to every
edit, so a kill lands mid-chunk), then at most :data:`MAX_PASSES` clean passes. Task processes
are forked from a forkserver that has imported the edit task's modules, as Airflow forks a task
from a process with Airflow imported; the edit service runs in this process and counts everything.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_image_catalog.tooling.reliability.invariants import check_run, check_settled, collect, listing
from airflow_image_catalog.tooling.reliability.runner import (
    PeakRss,
    ScenarioResult,
    connection_env,
    environment,
    prepare,
)
from airflow_image_catalog.tooling.reliability.scenarios import BFL, EDIT, Scenario
from airflow_image_catalog.workspace.layout import WorkspaceLayout

MAX_PASSES = 4
#: the fault kinds chaos draws from, per backend (path-limited, small counts)
POOL = {
    "openai": (
        {"kind": "status", "status": 429, "retry_after_ms": 20}, {"kind": "status", "status": 503},
        {"kind": "status", "status": 500}, {"kind": "drop"}, {"kind": "drop_after"},
        {"kind": "malformed_json"}, {"kind": "bad_base64"}, {"kind": "not_image"}, {"kind": "moderation"},
        {"kind": "hang", "seconds": 2.0},
    ),
    "bfl": (
        {"kind": "status", "status": 429, "retry_after_ms": 20}, {"kind": "status", "status": 503},
        {"kind": "bfl_pending"}, {"kind": "bfl_not_found"}, {"kind": "bfl_error"}, {"kind": "content_moderated"},
        {"kind": "bfl_expired"}, {"kind": "drop"},
    ),
}
PRELOAD = ["airflow_image_catalog.operators.image_edit", "airflow_image_catalog.pipeline.editing.task", "airflow_image_catalog.backends.openai_images",
           "airflow_image_catalog.backends.bfl", "airflow_image_catalog.hooks.image_edit", "airflow_image_catalog.pipeline.costing.ledger", "httpx"]


def chunk_task(env: dict[str, str], chunk_uri: str, conf: dict[str, Any]) -> None:
    """Body of one edit task process: the chunk through ``ImageEditOperator.execute`` (deferrals served here)."""
    import os

    os.environ.update(env)
    from airflow_image_catalog.tooling.reliability.runner import edit_task

    edit_task(conf, chunk_uri)


@dataclass
class ChaosRun:
    """One chaos run's draw: the reproducible facts behind a table row."""

    index: int
    backend: str
    images: int
    faults: list[dict[str, Any]]
    kills: int = 0
    passes: int = 0
    problems: list[str] = field(default_factory=list)


def draw(rng: random.Random, index: int) -> ChaosRun:
    backend = rng.choice(("openai", "openai", "bfl"))
    faults = []
    for template in rng.sample(POOL[backend], k=rng.randint(1, 4)):
        path = BFL if backend == "bfl" and template["kind"] in ("status", "drop") else EDIT
        faults.append({**template, "count": rng.randint(1, 3), "path": BFL if backend == "bfl" else path})
    return ChaosRun(index, backend, rng.randint(5, 10), faults)


def _pass(context, env: dict[str, str], conf: dict[str, Any], chunks: list[str], rng: random.Random | None,
          kill_rate: float, service: Any) -> int:
    """Every chunk in its own task process, two at a time; with ``rng``, some killed mid-work. Returns kills."""
    kills = 0
    for start in range(0, len(chunks), 2):
        procs = [context.Process(target=chunk_task, args=(env, uri, conf)) for uri in chunks[start:start + 2]]
        served = service.state.requests()
        for proc in procs:
            proc.start()
        doomed = [p for p in procs if rng is not None and rng.random() < kill_rate]
        if doomed:  # kill mid-chunk: once these tasks' first requests reached the service, at a random moment
            deadline = time.monotonic() + 10
            while (service.state.requests() == served and time.monotonic() < deadline
                   and any(p.is_alive() for p in doomed)):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        for proc in doomed:
            if proc.is_alive():
                proc.kill()  # SIGKILL: no cleanup, no manifest
                kills += 1
        for proc in procs:
            proc.join(timeout=120)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return kills


def run_chaos(lab: Any, runs: int, *, seed: int = 2026, kill_rate: float = 0.6,
              latency_s: float = 0.15) -> list[ScenarioResult]:
    """``runs`` chaos runs against ``lab`` (its service; file storage); one result per run."""
    from airflow_image_catalog.tooling.reliability.runner import slug

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    rng = random.Random(seed)
    results = []
    for index in range(runs):
        chaos = draw(rng, index)
        scenario = Scenario(f"chaos #{index} ({chaos.backend}: {', '.join(f['kind'] for f in chaos.faults)})",
                            backend=chaos.backend, faults=tuple(chaos.faults), images=chaos.images,
                            extras={"max_concurrency": 2, "timeout": 1.0, "poll_timeout": 1.5})
        results.append(_one(lab, scenario, chaos, context, rng, kill_rate, latency_s, slug))
    return results


def _one(lab, scenario: Scenario, chaos: ChaosRun, context, rng, kill_rate, latency_s, slug) -> ScenarioResult:
    import secrets

    from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests

    state = lab.service.state
    state.reset(config=True)
    key = f"sk-chaos-{secrets.token_hex(10)}"
    state.api_key, state.latency_s = key, latency_s
    env = connection_env(scenario.backend, lab.service.url, key, scenario.extras)
    started = time.perf_counter()
    with environment(env), PeakRss() as rss:
        setup = prepare(scenario, lab, lab.root / slug(f"chaos-{chaos.index}"), seed=chaos.index, chunk_size=3)
        run_key = f"chaos-{chaos.index:03d}"
        run = WorkspaceLayout(setup.workspace).run(run_key)
        chunks = listing(run.chunks) or write_chunk_manifests(
            discover_images(setup.conf["source"]), run_root=run.root, run_key=run_key, chunk_size=3)
        state.faults.set([dict(f) for f in chaos.faults])
        chaos.kills = _pass(context, env, setup.conf, chunks, rng, kill_rate, lab.service)
        outcome = collect(setup.workspace, run_key, state)
        first = dict(outcome.statuses())
        chaos.problems += [f"first pass: {p}" for p in _partial_checks(outcome)]
        state.faults.set([])
        state.latency_s = 0.0
        while chaos.passes < MAX_PASSES:
            chaos.passes += 1
            _pass(context, env, setup.conf, chunks, None, 0.0, lab.service)
            outcome = collect(setup.workspace, run_key, state)
            chaos.problems += [f"pass {chaos.passes}: {p}" for p in check_run(outcome)]
            if not outcome.statuses().get("failed_retryable"):
                break
        chaos.problems += [f"settled: {p}" for p in check_settled(outcome)]
    calls = outcome.calls_per_image()
    return ScenarioResult(
        name=f"{scenario.name}, {chaos.kills} SIGKILL", mode="chaos", images=setup.images, first=first,
        final=dict(outcome.statuses()), calls=len(outcome.paid), max_calls_per_image=max(calls.values(), default=0),
        duplicates=outcome.duplicates, lost=len(outcome.lost), ledger_rows=outcome.ledger_rows,
        paid_without_result=len(outcome.paid) - outcome.produced, reruns=chaos.passes, first_run_state="killed"
        if chaos.kills else "success", peak_rss_mb=rss.mb, wall_s=round(time.perf_counter() - started, 1),
        reasons=[json.dumps(chaos.faults)], problems=chaos.problems, api_key=key, workspace=setup.workspace, possibly_billed=outcome.possibly_billed)


def _partial_checks(outcome) -> list[str]:
    """After a pass with kills, a killed chunk has no manifest: its images may be mid-flight (``submitted``
    or without a state); the rest of :func:`check_run` must hold."""
    return [p for p in check_run(outcome) if not p.startswith(("not exactly one record", "images without", "lost"))]
