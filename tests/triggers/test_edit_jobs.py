"""EditJobsTrigger (serialize, run against the local edit service) and the operator's deferral loop."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.triggers.edit_jobs import EditJobsTrigger
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest
from tests.fixtures.service import product_png

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}


@pytest.fixture
def bfl_conn(service, monkeypatch):
    conn = {"conn_type": "image_edit", "host": service.url, "password": "bfl-key-9",
            "extra": {"backend": "bfl", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_BFL_JOBS", json.dumps(conn))
    return "bfl_jobs"


def _three_image_chunk(tmp_path: Path) -> str:
    """Three small products discovered into one chunk manifest of run ``run1``; its URI."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        (source / f"p{i}.png").write_bytes(product_png(color=(60 * i, 90, 30)))
    found = discover_images(source.as_uri())
    return write_json((tmp_path / "chunk.json").as_uri(),
                      ChunkManifest("run1", 0, found.source_root, found.items).to_dict())


def roundtrip(trigger: EditJobsTrigger) -> EditJobsTrigger:
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


async def first_event(trigger: EditJobsTrigger, timeout: float = 20):
    async def one():
        async for event in trigger.run():
            return event.payload
    return await asyncio.wait_for(one(), timeout)


def test_serialize_round_trips_every_kwarg():
    kwargs = {"conn_id": "c", "jobs": {"a": {"id": "1", "polling_url": "http://x/1"}}, "poll_interval": 0.5,
              "deadline": 123.0, "hold_ready": 7.0, "overrides": {"backend": "openai_batch", "quality": "low"}}
    assert set(kwargs) == set(inspect.signature(EditJobsTrigger).parameters)  # every kwarg, none forgotten
    trigger = EditJobsTrigger(**kwargs)
    path, serialized = trigger.serialize()
    assert serialized == kwargs
    assert roundtrip(trigger).serialize() == trigger.serialize()
    module, name = path.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is EditJobsTrigger  # the literal path imports


async def test_an_unreadable_connection_is_an_error_event_not_an_exception(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN_EDIT", json.dumps({"conn_type": "image_edit",
                                                               "extra": {"backend": "no-such-backend"}}))
    payload = await first_event(EditJobsTrigger("broken_edit", {"a": {"id": "1"}}, poll_interval=0.01))
    assert payload["status"] == "error"
    assert "broken_edit" in payload["message"] and "no-such-backend" in payload["message"]
    from airflow_image_catalog.triggers.edit_jobs import first_event as worker_poll  # the non-deferrable path
    from airflow_image_catalog.triggers.events import TriggerEventError

    with pytest.raises(TriggerEventError, match="EditJobsTrigger error: .*no-such-backend"):
        await worker_poll(EditJobsTrigger("broken_edit", {"a": {"id": "1"}}, poll_interval=0.01))


async def test_a_failing_poll_round_is_one_error_event(service, bfl_conn, monkeypatch):
    jobs = await _submit(bfl_conn, 1)

    async def broken_round(self, backend, keys):
        raise KeyError("polling_url")  # a bug, not a provider answer

    monkeypatch.setattr(EditJobsTrigger, "_poll_round", broken_round)
    trigger = EditJobsTrigger(bfl_conn, jobs, poll_interval=0.01)
    events = [event.payload async for event in trigger.run()]
    assert events == [{"status": "error", "message": f"polling 1 jobs through connection {bfl_conn!r} failed: "
                                                     "KeyError: 'polling_url'"}]


def test_the_operator_fails_clearly_on_an_error_event(tmp_path: Path):
    from airflow_image_catalog.operators.image_edit import ImageEditOperator
    from airflow_image_catalog.triggers.events import TriggerEventError

    op = ImageEditOperator(task_id="edit", chunk_manifest_uri=(tmp_path / "c.json").as_uri(), recipe="r",
                           workspace=tmp_path.as_uri(), deferrable=True)
    with pytest.raises(TriggerEventError, match="EditJobsTrigger error: polling 1 jobs .* failed: boom"):
        op.execute_complete({}, {"status": "error", "message": "polling 1 jobs through 'c' failed: boom"})
    with pytest.raises(TriggerEventError, match="without an event"):
        op.execute_complete({}, None)
    with pytest.raises(TriggerEventError, match="unexpected event status 'done'"):
        op.execute_complete({}, {"status": "done", "results": {}})


async def _submit(conn_id: str, count: int) -> dict:
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.hooks.image_edit import ImageEditHook
    from airflow_image_catalog.recipes import parse_recipe

    backend = ImageEditHook(conn_id).get_backend()
    recipe = parse_recipe({"name": "t", "steps": [{"id": "s", "prompt": "warm golden look",
                                                   "local": {"op": "look", "params": {"name": "warm"}}}]})
    jobs = {f"img{i}": await backend.asubmit(product_png(), recipe, 0, ImageContext(f"img{i}", "", ""))
            for i in range(count)}
    await backend.transport.aclose()
    return jobs


async def test_polls_all_jobs_and_separates_permanent_from_transient(service, bfl_conn):
    service.state.faults.add(kind="request_moderated", path="/v1/flux", count=1)
    service.state.faults.add(kind="bfl_error", path="/v1/flux", count=1)
    jobs = await _submit(bfl_conn, 4)
    service.state.faults.add(kind="status", status=503, path="/v1/get_result", count=3)  # transient polls
    payload = await first_event(roundtrip(EditJobsTrigger(bfl_conn, jobs, poll_interval=0.02)))
    results = payload["results"]
    assert payload["status"] == "success" and set(results) == set(jobs)
    states = sorted((r["state"], r["code"], r["retryable"]) for r in results.values())
    assert states == [("failed", "provider_error", True), ("failed", "request_moderated", False),
                      ("ready", None, False), ("ready", None, False)]
    assert all(r["result"]["sample"] for r in results.values() if r["state"] == "ready")


async def test_deadline_reports_outstanding_jobs(service, bfl_conn):
    service.state.faults.add(kind="bfl_pending", path="/v1/flux", count=1)
    jobs = await _submit(bfl_conn, 2)
    payload = await first_event(EditJobsTrigger(bfl_conn, jobs, poll_interval=0.02, deadline=time.time() + 0.5))
    assert payload["status"] == "timeout"
    codes = sorted(str(r["code"]) for r in payload["results"].values())
    assert codes == ["None", "timeout"]
    stuck = next(r for r in payload["results"].values() if r["code"] == "timeout")
    assert stuck["retryable"] and stuck["state"] == "failed"


def test_operator_defers_persists_job_ids_and_finishes(service, bfl_conn, tmp_path: Path):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    chunk_uri = _three_image_chunk(tmp_path)
    service.state.faults.add(kind="content_moderated", path="/v1/flux", count=1)
    op = ImageEditOperator(task_id="edit", chunk_manifest_uri=chunk_uri, recipe="campaign_style_look",
                           workspace=tmp_path.as_uri(), backend_conn_id=bfl_conn, deferrable=True,
                           poll_interval=0.02)
    event, rounds = None, 0
    while True:
        try:
            uri = op.execute({}) if event is None else op.execute_complete({}, event)
            break
        except TaskDeferred as deferred:
            rounds += 1
            jobs = read_json((tmp_path / "runs/run1/jobs/chunk-00000.json").as_uri())
            assert set(jobs["pending"]) and all(e["job"]["id"] for e in jobs["pending"].values())
            assert "bfl-key-9" not in json.dumps(jobs) and "bfl-key-9" not in json.dumps(deferred.trigger.serialize())
            event = asyncio.run(first_event(roundtrip(deferred.trigger)))
    manifest = EditManifest.from_dict(read_json(uri))
    assert rounds == 3  # one deferral per recipe step (3 steps)
    assert manifest.counts() == {"edited": 2, "failed_retryable": 0, "failed_final": 1, "skipped_budget": 0} and manifest.backend == "bfl"
    failed = next(r for r in manifest.items if r.status == "failed_final")
    assert failed.error_code == "content_moderated" and failed.retryable is False
    for record in manifest.items:
        if record.status == "edited":
            assert len(record.usage) == 3 and all(u["credits"] == 4.0 for u in record.usage)
            assert Path(record.output_uri[len("file://"):]).exists()
    assert service.state.served["POST /v1/flux-kontext-pro"] == 7  # 3 + 2 + 2: never resubmitted


def test_jobs_submitted_before_a_crash_are_collected_not_resubmitted(service, bfl_conn, tmp_path):
    """The worker died after submitting (each job id is in its image's state) but before the jobs
    manifest was written: the rerun resumes the recorded jobs and pays for nothing new."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    chunk_uri = _three_image_chunk(tmp_path)
    op = ImageEditOperator(task_id="edit", chunk_manifest_uri=chunk_uri, recipe="campaign_style_look",
                           workspace=tmp_path.as_uri(), backend_conn_id=bfl_conn, deferrable=True, poll_interval=0.02)
    with pytest.raises(TaskDeferred) as first:
        op.execute({})
    submitted = service.state.served["POST /v1/flux-kontext-pro"]
    assert submitted == 3
    jobs_manifest = tmp_path / "runs" / "run1" / "jobs" / "chunk-00000.json"
    jobs_manifest.unlink()  # the crash: only the per-image states survived

    with pytest.raises(TaskDeferred) as again:
        op.execute({})
    assert service.state.served["POST /v1/flux-kontext-pro"] == submitted  # nothing resubmitted
    assert again.value.trigger.jobs == first.value.trigger.jobs  # the same jobs, collected
