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


# -- tasks in flight, BFL's rate-limit headers, FLUX.1 as legacy ---------------------------------------
def _submit(service, model="flux-2-pro"):
    import base64

    import httpx

    body = {"prompt": "Apply a warm golden look.", "input_image": base64.b64encode(product_png()).decode()}
    return httpx.post(f"{service.url}/v1/{model}", json=body, headers={"x-key": "k"})


def test_the_service_limits_tasks_in_flight_as_bfl_does(service):
    service.state.faults.add(kind="bfl_pending", count=6, path="/v1/flux-kontext-max")  # six tasks that never end
    answers = [_submit(service, "flux-kontext-max") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 6 + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "6" and int(answers[0].headers["x-ratelimit-reset"]) > 1e9
    refused = answers[6]
    assert refused.json()["error"] == "rate_limit_exceeded" and refused.headers["retry-after"] == "1"
    assert _submit(service, "flux-2-pro").headers["x-ratelimit-limit"] == "24"  # another limit group: admitted


@pytest.mark.parametrize(("backend_tasks", "refused"), [(3, False), (24, True)])
async def test_images_hold_a_task_slot_from_submit_to_download(service, monkeypatch, tmp_path, backend_tasks,
                                                               refused):
    import asyncio

    service.state.bfl_max_tasks, service.state.bfl_task_seconds = 3, 0.15  # short polls, longer tasks
    backend = bfl(service, monkeypatch, model="flux-2-pro", max_tasks=backend_tasks, max_concurrency=8,
                  max_attempts=1, poll_timeout=5)
    results = await asyncio.gather(*(backend.aedit(product_png(color=(20 * i, 90, 160)), recipe(tmp_path),
                                                   ctx(tmp_path)) for i in range(8)), return_exceptions=True)
    await backend.transport.aclose()
    failures = [r for r in results if isinstance(r, Exception)]
    if not refused:  # 8 images, 3 task slots: never a 429, every image edited
        assert failures == [] and service.stats()["rate_limited"] == 0 and len(service.state.performed) == 8
    else:  # counting HTTP requests instead of tasks: BFL refuses the 4th task in flight
        assert service.stats()["rate_limited"] > 0 and all("rate_limit_exceeded" in str(f) for f in failures)


def test_bfl_rate_limit_headers_pause_new_tasks_only():
    import time

    import httpx

    from airflow_image_catalog.backends.http import Limiter

    limiter = Limiter()
    limiter.observe(httpx.Headers({"X-RateLimit-Limit": "24", "X-RateLimit-Remaining": "0",
                                   "X-RateLimit-Reset": str(int(time.time()) + 3)}))
    assert 1.5 < limiter._pause(billed=True) <= 3.0  # a new task waits for BFL's reset (epoch seconds)
    assert limiter._pause(billed=False) == 0.0  # polls and downloads go on: they end tasks
    capped = Limiter()
    capped.observe(httpx.Headers({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 900)}),
                   max_pause=2.0)
    assert 1.0 < capped._pause(billed=True) <= 2.0  # capped like a retry-after


def test_task_limits_per_model_and_flux1_is_legacy(caplog):
    from airflow_image_catalog.backends.bfl import task_limit
    from airflow_image_catalog.backends.http import HttpSettings, HttpTransport

    assert (task_limit("flux-kontext-max"), task_limit("flux-kontext-pro"), task_limit("flux-2-pro")) == (6, 24, 24)
    transport = HttpTransport("bfl", HttpSettings("http://127.0.0.1:9"))
    assert BFLBackend(transport, model="flux-kontext-max", max_tasks=10).tasks.limit == 6  # never above BFL's
    assert BFLBackend(transport, model="flux-2-pro", max_tasks="4").tasks.limit == 4
    with pytest.raises(EditError, match="max_tasks"):
        BFLBackend(transport, model="flux-2-pro", max_tasks=0)
    caplog.clear()
    BFLBackend(transport, model="flux-kontext-pro")
    assert "legacy" in caplog.text and "FLUX.2" in caplog.text
    caplog.clear()
    BFLBackend(transport, model="flux-2-pro")
    assert "legacy" not in caplog.text
