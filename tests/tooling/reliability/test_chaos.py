"""Randomised chaos (seeded): random fault mixes and SIGKILLed edit task processes, reruns until done."""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.reliability.chaos import run_chaos


def test_a_few_chaos_runs_keep_every_invariant(service, tmp_path):
    from airflow_image_catalog.tooling.reliability.runner import Lab

    results = run_chaos(Lab(service, tmp_path, mode="chunk"), runs=3, seed=7)
    for result in results:
        assert result.ok, f"{result.name}: " + "\n".join(result.problems)
    assert sum("SIGKILL" in r.name and not r.name.endswith(" 0 SIGKILL") for r in results) >= 1


def kill_once_edited(env: dict, chunk_uri: str, conf: dict) -> None:
    """An edit task SIGKILLed in the one window a random kill can hit last: a paid result already in the
    result cache and the run's outputs, its state (``edited``) not yet written."""
    import os
    import signal

    from airflow_image_catalog.workspace.manifest import ImageStatus
    from airflow_image_catalog.workspace.state import ChunkState

    save = ChunkState.save

    def dying_save(self, record, **kwargs):
        if record.status == ImageStatus.EDITED:
            os.kill(os.getpid(), signal.SIGKILL)
        return save(self, record, **kwargs)

    ChunkState.save = dying_save
    from airflow_image_catalog.tooling.reliability.chaos import chunk_task

    chunk_task(env, chunk_uri, conf)


@pytest.mark.parametrize("backend", ["bfl", "openai"])
def test_a_kill_after_the_cache_put_before_the_state_is_recovered_and_accounted(service, tmp_path, backend):
    """The window behind a CI failure of the chaos run ("calls that produced a result 10 != outputs 9"): the
    killed task's paid result is in the cache, booked, and the rerun takes it from there (a cache hit, $0):
    paid once, booked once, delivered once. The accounting counts it as the output of this run's own call."""
    import multiprocessing

    from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
    from airflow_image_catalog.tooling.reliability.chaos import PRELOAD, _pass
    from airflow_image_catalog.tooling.reliability.invariants import check_settled, collect
    from airflow_image_catalog.tooling.reliability.runner import Lab, connection_env, environment, prepare
    from airflow_image_catalog.tooling.reliability.scenarios import Scenario
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    lab = Lab(service, tmp_path, mode="chunk")
    state = service.state
    state.reset(config=True)
    state.api_key = key = "sk-window-test"
    scenario = Scenario("kill after the cache put", backend=backend, images=3, extras={"max_concurrency": 1})
    env = connection_env(backend, service.url, key, scenario.extras)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with environment(env):
        setup = prepare(scenario, lab, tmp_path / "window", chunk_size=3)
        run = WorkspaceLayout(setup.workspace).run("window")
        chunks = write_chunk_manifests(discover_images(setup.conf["source"]), run_root=run.root,
                                       run_key="window", chunk_size=3)
        killed = context.Process(target=kill_once_edited, args=(env, chunks[0], setup.conf))
        killed.start()
        killed.join(timeout=120)
        assert killed.exitcode == -9, "the task was not killed in the window"
        assert len(state.performed) == 1, "the killed task paid exactly one edit"
        _pass(context, env, setup.conf, chunks, None, 0.0, service)
        outcome = collect(setup.workspace, "window", state)
    assert [r.cache_hit for r in outcome.records].count(True) == 1, "the killed task's result came from the cache"
    assert dict(outcome.statuses()) == {"edited": 3}
    assert outcome.produced == len(outcome.paid) == outcome.ledger_rows == 3
    assert outcome.own_cache_hits == 1
    assert check_settled(outcome) == []
    # the same hit on an entry another run wrote is no output of this run's calls: the accounting still fails
    from airflow_image_catalog.storage import join_uri, read_json, write_json
    from airflow_image_catalog.workspace.cache import ResultCache

    hit = next(r for r in outcome.records if r.cache_hit)
    meta_uri = join_uri(ResultCache(setup.workspace)._entry(hit.cache_key), "meta.json")
    write_json(meta_uri, {**read_json(meta_uri), "created_by": {"run_key": "another-run", "chunk_index": 0}})
    problems = check_settled(collect(setup.workspace, "window", state))
    assert problems == ["calls that produced a result 3 != outputs 2 + duplicates 0"]
