"""The openai_batch backend (JSONL -> Files -> Batch -> poll -> output/error files) against the local edit service."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from airflow_image_catalog.operators.image_edit import ImageEditOperator
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.triggers.edit_jobs import first_event
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest
from tests.fixtures.service import product_png

KEY = "sk-batch-key-3"
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}
RECIPE = {"name": "two_steps", "output": {"format": "png", "size": "128x128"}, "steps": [
    {"id": "warm", "prompt": "Apply a warm golden look.", "local": {"op": "look", "params": {"name": "warm"}}},
    {"id": "white", "prompt": "Replace the background with pure white.", "mask": "background",
     "local": {"op": "white_background", "params": {}}},
]}


@pytest.fixture
def batch_conn(service, monkeypatch):
    service.state.api_key = KEY
    conn = {"conn_type": "image_edit", "host": service.openai_base_url, "password": KEY,
            "extra": {"backend": "openai_batch", "model": "gpt-image-1.5", "quality": "low", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_BATCH_EDITS", json.dumps(conn))
    return "batch_edits"


def _operator(tmp_path: Path, conn_id: str, count: int = 3, **kwargs) -> ImageEditOperator:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(count):
        (source / f"p{i}.png").write_bytes(product_png(color=(60 * i, 90, 30)))
    found = discover_images(source.as_uri())
    chunk_uri = write_json((tmp_path / "chunk.json").as_uri(),
                           ChunkManifest("run1", 0, found.source_root, found.items).to_dict())
    recipe = tmp_path / "two_steps.yaml"
    recipe.write_text(json.dumps(RECIPE))
    return ImageEditOperator(task_id="edit", chunk_manifest_uri=chunk_uri, recipe=str(recipe),
                             workspace=tmp_path.as_uri(), backend_conn_id=conn_id, poll_interval=0.02, **kwargs)


def _manifest(uri: str) -> EditManifest:
    return EditManifest.from_dict(read_json(uri))


def test_batch_per_step_maps_results_and_failed_lines_by_custom_id(service, batch_conn, tmp_path):
    service.state.faults.add(kind="batch_line_error", path="/v1/images/edits", count=1)
    manifest = _manifest(_operator(tmp_path, batch_conn).execute({}))  # not deferrable: polls from the worker

    assert manifest.backend == "openai_batch" and manifest.counts() == {"edited": 2, "failed_retryable": 0, "failed_final": 1, "skipped_budget": 0}
    failed = next(r for r in manifest.items if r.status == "failed_final")
    assert failed.error_code == "invalid_image" and failed.retryable is False
    for record in manifest.items:
        if record.status == "edited":
            assert [u["step"] for u in record.usage] == ["warm", "white"]
            assert all(u["batch"] is True and u["output_tokens"] > 0 for u in record.usage)
            assert Path(record.output_uri[len("file://"):]).exists() and (record.width, record.height) == (128, 128)
    served = service.state.served
    assert served["POST /v1/files"] == 2 and served["POST /v1/batches"] == 2  # one batch per recipe step
    # the input file: one line per image, the documented envelope, images as base64 data URLs
    inputs = [f for f in service.state.files.values() if f["purpose"] == "batch"]
    first = [json.loads(line) for line in inputs[0]["content"].decode().splitlines()]
    assert len(first) == 3 and {line["custom_id"] for line in first} == {"p0:warm", "p1:warm", "p2:warm"}
    line = first[0]
    assert line["method"] == "POST" and line["url"] == "/v1/images/edits"
    assert line["body"]["model"] == "gpt-image-1.5" and line["body"]["n"] == 1 and "mask" not in line["body"]
    assert base64.b64decode(line["body"]["images"][0]["image_url"].split(",", 1)[1])[:4] == b"\x89PNG"
    second = [json.loads(line) for line in inputs[1]["content"].decode().splitlines()]
    assert len(second) == 2 and all(line["body"]["mask"]["image_url"].startswith("data:image/png;base64,")
                                    for line in second)
    assert KEY not in json.dumps(read_json((tmp_path / "runs/run1/jobs/chunk-00000.json").as_uri()))


def test_expired_batch_fails_every_image_retryably(service, batch_conn, tmp_path):
    service.state.faults.add(kind="batch_expired", path="/v1/batches", count=1)
    manifest = _manifest(_operator(tmp_path, batch_conn, count=2).execute({}))
    assert manifest.counts() == {"edited": 0, "failed_retryable": 2, "failed_final": 0, "skipped_budget": 0}
    assert all(r.error_code == "batch_expired" and r.retryable for r in manifest.items)
    assert service.state.served["POST /v1/batches"] == 1


def test_deferrable_persists_the_batch_id_before_waiting(service, batch_conn, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    op = _operator(tmp_path, batch_conn, count=2, deferrable="{{ params.deferrable }}")
    op.render_template_fields({"params": {"deferrable": True}})
    event, batch_ids = None, []
    while True:
        try:
            uri = op.execute({}) if event is None else op.execute_complete({}, event)
            break
        except TaskDeferred as deferred:
            jobs = read_json((tmp_path / "runs/run1/jobs/chunk-00000.json").as_uri())["pending"]
            ids = {entry["job"]["id"] for entry in jobs.values()}
            assert len(ids) == 1 and next(iter(ids)) in service.state.batches  # one batch, recorded
            batch_ids += ids
            event = asyncio.run(first_event(deferred.trigger))
    assert len(set(batch_ids)) == 2 and _manifest(uri).counts() == {"edited": 2, "failed_retryable": 0, "failed_final": 0, "skipped_budget": 0}
    assert service.state.served["GET /v1/batches/" + batch_ids[0]] >= 1


async def test_cancel_is_sent_once_per_batch(service, batch_conn, tmp_path):
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.hooks.image_edit import ImageEditHook
    from airflow_image_catalog.recipes import parse_recipe

    backend = ImageEditHook(batch_conn).get_backend()
    recipe = parse_recipe(RECIPE)
    jobs = await backend.asubmit_many([(f"i{i}", product_png(), 0, ImageContext(f"i{i}", "", "")) for i in range(2)],
                                      recipe)
    assert await backend.acancel(jobs["i0"]) and await backend.acancel(jobs["i1"])
    assert service.state.served[f"POST /v1/batches/{jobs['i0']['id']}/cancel"] == 1
    await backend.transport.aclose()


@pytest.mark.parametrize(("batch", "files", "expected"), [
    *[({"status": s}, {}, ("pending", None, False)) for s in ("validating", "in_progress", "finalizing", "cancelling")],
    ({"status": "failed", "errors": {"data": [{"code": "invalid_json_line", "message": "line 1"}]}}, {},
     ("failed", "invalid_json_line", False)),
    ({"status": "completed", "output_file_id": "out"}, {}, ("ready", None, False)),
    ({"status": "completed", "error_file_id": "err"},
     {"err": [{"custom_id": "p:s", "response": {"status_code": 400, "body": {"error": {"code": "moderation_blocked"}}}}]},
     ("failed", "moderation_blocked", False)),
    ({"status": "expired"}, {}, ("failed", "batch_expired", True)),
    # "any already completed work is returned ... charged" (OpenAI's Batch FAQ): collected, so it is booked
    ({"status": "expired", "output_file_id": "out"}, {}, ("ready", None, False)),
    ({"status": "cancelled"}, {}, ("failed", "batch_cancelled", True)),
    ({"status": "paused", "output_file_id": "out"}, {}, ("failed", "unknown_status", False)),
])
def test_every_batch_status_of_the_sdk_and_an_unknown_one(batch_conn, batch, files, expected):
    """Each value of the SDK's ``Batch.status`` Literal (``openai/types/batch.py``) and one it does not name."""
    import typing

    import httpx
    from openai.types.batch import Batch

    from airflow_image_catalog.backends.openai_batch import STATUSES
    from airflow_image_catalog.hooks.image_edit import ImageEditHook

    assert set(STATUSES) == set(typing.get_args(Batch.model_fields["status"].annotation))

    class Answers:  # what GET /batches/{id} and /files/{id}/content answer
        async def asend(self, request):
            if request.url.startswith("batches/"):
                return httpx.Response(200, json={"id": "b1", **batch}), 1
            lines = files[request.url.split("/")[1]]
            return httpx.Response(200, content="".join(json.dumps(line) + "\n" for line in lines).encode()), 1

    backend = ImageEditHook(batch_conn).get_backend()
    backend.transport = Answers()
    status = asyncio.run(backend.apoll({"id": "b1", "custom_id": "p:s", "step": 0}))
    assert (status.state, status.code, status.retryable) == expected
    if expected[1] == "unknown_status":
        assert "'paused'" in status.message
