"""The BFL backend against the local edit service's submit/poll contract and its job faults."""

from __future__ import annotations

import json

import pytest

from airflow_image_catalog.backends.base import EditError, ImageContext
from airflow_image_catalog.backends.bfl import BFLBackend
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.recipes import parse_recipe
from tests.fixtures.service import product_png

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3,
        "poll_interval": 0.02, "poll_timeout": 0.5}


def bfl(service, monkeypatch, **extras) -> BFLBackend:
    conn = {"conn_type": "image_edit", "host": service.url, "password": "bfl-key-7",
            "extra": {"backend": "bfl", **FAST, **extras}}
    monkeypatch.setenv("AIRFLOW_CONN_BFL_EDITS", json.dumps(conn))
    return ImageEditHook("bfl_edits").get_backend()


def recipe(tmp_path, steps=1, fmt="jpeg"):
    return parse_recipe({"name": "t", "output": {"format": fmt}, "steps": [
        {"id": f"s{i}", "prompt": "Apply a warm golden look.", "local": {"op": "look", "params": {"name": "warm"}}}
        for i in range(steps)]}, origin=(tmp_path / "r.yaml").as_uri())


def ctx(tmp_path):
    return ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())


def test_submit_poll_download(service, monkeypatch, tmp_path):
    service.state.api_key = "bfl-key-7"
    result = bfl(service, monkeypatch, model="flux-kontext-max", seed=7).edit(product_png(), recipe(tmp_path, 2),
                                                                             ctx(tmp_path))
    assert result.format == "jpeg" and result.data[:2] == b"\xff\xd8"
    assert [u["credits"] for u in result.usage] == [8.0, 8.0] and result.usage[0]["provider"] == "bfl"
    served = service.state.served
    assert served["POST /v1/flux-kontext-max"] == 2 and served["GET /v1/get_result"] >= 2
    assert sum(v for k, v in served.items() if k.startswith("GET /_delivery/")) == 2
    assert result.attempts == served["total"]


@pytest.mark.parametrize(("fate", "code", "retryable"), [
    ("request_moderated", "request_moderated", False),
    ("content_moderated", "content_moderated", False),
    ("bfl_error", "provider_error", True),
    ("bfl_not_found", "task_not_found", True),
    ("bfl_expired", "sample_expired", True),
    ("bfl_pending", "timeout", True),
])
def test_job_fates_end_in_the_right_error(service, monkeypatch, tmp_path, fate, code, retryable):
    service.state.faults.add(kind=fate, path="/v1/flux")
    with pytest.raises(EditError) as info:
        bfl(service, monkeypatch).edit(product_png(), recipe(tmp_path), ctx(tmp_path))
    assert info.value.code == code and info.value.retryable is retryable
    assert service.state.served["POST /v1/flux-kontext-pro"] == 1  # never resubmitted (never paid twice)


def test_out_of_credits_is_not_retried_now_but_by_a_rerun(service, monkeypatch, tmp_path):
    service.state.faults.add(kind="status", status=402, path="/v1/flux")
    with pytest.raises(EditError) as info:
        bfl(service, monkeypatch).edit(product_png(), recipe(tmp_path), ctx(tmp_path))
    # not the image's fault: a rerun after a top-up redoes it (the edit task fails the chunk at once)
    assert info.value.code == "insufficient_credits" and info.value.retryable and info.value.attempts == 1


async def test_job_interface(service, monkeypatch, tmp_path):
    backend = bfl(service, monkeypatch)
    job = await backend.asubmit(product_png(), recipe(tmp_path), 0, ctx(tmp_path))
    assert set(job) >= {"id", "polling_url", "credits"} and "bfl-key-7" not in json.dumps(job)
    status = await backend.apoll(job)
    while status.state == "pending":
        status = await backend.apoll(job)
    data, usage = await backend.acollect(job, status)
    assert data[:2] == b"\xff\xd8" and usage["job_id"] == job["id"]  # the final step: the recipe's jpeg
    assert await backend.acancel(job) is False
    await backend.transport.aclose()


@pytest.mark.parametrize(("body", "state", "code", "retryable"), [
    ({"status": "Pending"}, "pending", None, False),
    ({"status": "Error", "error": "GPU fell over"}, "failed", "provider_error", True),
    ({"status": "Content Moderated", "result": {"error": "flagged"}}, "failed", "content_moderated", False),
    ({"status": "Queued"}, "failed", "unknown_status", False),  # BFL's own SDK fails on a status it does not know
    ({}, "failed", "unknown_status", False),
])
def test_every_documented_status_and_an_unknown_one(body, state, code, retryable):
    status = BFLBackend.status_from({"id": "t1", **body})
    assert (status.state, status.code, status.retryable) == (state, code, retryable)
    if body.get("status") == "Queued":
        assert "'Queued'" in status.message  # the raw value, named
    if "error" in body:
        assert "GPU fell over" in status.message  # the top-level error text is kept


@pytest.mark.parametrize(("model", "cap"), [("flux-kontext-pro", 4), ("flux-kontext-max", 4), ("flux-2-pro", 8),
                                            ("flux-2-max", 8), ("flux-2-flex", 8), ("flux-2-klein-4b", 4),
                                            ("flux-future", 4)])
def test_reference_caps_per_model(model, cap):
    from airflow_image_catalog.backends.bfl import max_input_images

    assert max_input_images(model) == cap


def test_too_many_references_are_refused_before_anything_is_sent(service, monkeypatch, tmp_path):
    refs = [f"ref-{i}.png" for i in range(4)]  # 1 image + 4 references = 5 > Kontext's input_image_4
    many = parse_recipe({"name": "refs", "output": {"format": "png"}, "steps": [
        {"id": "first", "prompt": "Warm it.", "local": {"op": "look", "params": {"name": "warm"}}},
        {"id": "match", "prompt": "Match the references.", "reference_images": refs,
         "local": {"op": "look", "params": {"name": "warm"}}}]}, origin=(tmp_path / "r.yaml").as_uri())
    with pytest.raises(EditError, match=r"step 'match' field 'reference_images' lists 4 images; flux-kontext-pro "
                                        r"takes at most 3 references \(input_image \.\. input_image_4\)") as info:
        bfl(service, monkeypatch).edit(product_png(), many, ctx(tmp_path))
    assert not info.value.retryable and service.state.served["total"] == 0  # the first step was not paid either
