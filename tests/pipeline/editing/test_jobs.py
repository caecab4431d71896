"""The jobs path (deferrable / batch edits) runs the inline path's stages: the same skip rule included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.storage.local import uri_to_path
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest, ImageStatus, sha256_hex
from tests.fixtures.service import product_png

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}


@pytest.fixture
def bfl_conn(service, monkeypatch):
    conn = {"conn_type": "image_edit", "host": service.url, "password": "bfl-key-9", "extra": {"backend": "bfl", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_BFL_REDO", json.dumps(conn))
    return "bfl_redo"


def _chunk(tmp_path: Path, count: int) -> str:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(count):
        (source / f"p{i}.png").write_bytes(product_png(color=(60 * i, 90, 30)))
    found = discover_images(source.as_uri())
    return write_json((tmp_path / "chunk.json").as_uri(), ChunkManifest("run1", 0, found.source_root, found.items).to_dict())


def _run_deferred(op) -> EditManifest:
    """The operator's execute, then execute_complete per trigger event, as the triggerer would drive it."""
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_image_catalog.triggers.edit_jobs import first_event

    event = None
    while True:
        try:
            uri = op.execute({}) if event is None else op.execute_complete({}, event)
            return EditManifest.from_dict(read_json(uri))
        except TaskDeferred as deferred:
            event = asyncio.run(first_event(deferred.trigger))


def test_a_rerun_redoes_an_edited_image_whose_output_is_gone(service, bfl_conn, tmp_path: Path):
    """The state says ``edited`` but the output was lost (a write that never landed, a cleanup): the jobs
    path redoes the image, as the inline path does, instead of handing on a manifest pointing at nothing.
    The result cache has the edit, so the redo costs no new provider job."""
    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    op = ImageEditOperator(task_id="edit", chunk_manifest_uri=_chunk(tmp_path, 2), recipe="marketplace_white_square",
                           workspace=tmp_path.as_uri(), backend_conn_id=bfl_conn, deferrable=True, poll_interval=0.02)
    first = _run_deferred(op)
    assert [r.status for r in first.items] == [ImageStatus.EDITED] * 2
    submitted = service.state.served["POST /v1/flux-kontext-pro"]
    lost = first.items[0]
    uri_to_path(lost.output_uri).unlink()

    again = _run_deferred(op)  # a rerun of the task: no job pending, so the per-image state decides
    redone = next(r for r in again.items if r.image_id == lost.image_id)
    assert redone.status == ImageStatus.EDITED and redone.cache_hit
    assert sha256_hex(uri_to_path(redone.output_uri).read_bytes()) == lost.output_sha256
    kept = next(r for r in again.items if r.image_id != lost.image_id)
    assert not kept.cache_hit and kept.finished_at == first.items[1].finished_at  # kept as it was
    assert service.state.served["POST /v1/flux-kontext-pro"] == submitted  # nothing paid twice


def test_a_deferred_chunk_never_has_more_jobs_out_than_bfl_admits(service, monkeypatch, tmp_path: Path):
    """BFL runs an account's tasks 24 at a time (6 for Kontext [max]) and answers a 25th submit with 429
    (the service enforces it, ``tests/backends/test_bfl.py``). A deferred chunk larger than the limit
    submits the first images, then the rest as jobs end: no 429, every image edited, nothing paid twice."""
    from airflow_image_catalog.operators.image_edit import ImageEditOperator

    service.state.bfl_max_tasks, service.state.bfl_task_seconds = 2, 0.1  # an account of 2 tasks in flight
    conn = {"conn_type": "image_edit", "host": service.url, "password": "bfl-key-9",
            "extra": {"backend": "bfl", "max_tasks": 2, **FAST, "max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_BFL_TWO", json.dumps(conn))
    op = ImageEditOperator(task_id="edit", chunk_manifest_uri=_chunk(tmp_path, 5), recipe="marketplace_white_square",
                           workspace=tmp_path.as_uri(), backend_conn_id="bfl_two", deferrable=True, poll_interval=0.02)
    manifest = _run_deferred(op)
    assert [r.status for r in manifest.items] == [ImageStatus.EDITED] * 5
    assert service.stats()["rate_limited"] == 0
    assert service.state.served["POST /v1/flux-kontext-pro"] == 10  # one job per image and step (two steps)
