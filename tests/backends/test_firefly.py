"""The firefly backend against a loopback server speaking the Firefly Services contract (IMS token, upload, fill-async)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.backends.base import EditError, ImageContext
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.tooling.service.server import LoopbackServer
from tests.fixtures.service import product_png

SECRET = "firefly-secret-42"
# terminal answers of the status endpoint (Adobe's async guide: states and error codes)
TERMINAL = {
    "runtime_error": {"status": "failed", "error_code": "runtime_error", "message": "internal error"},
    "timeout_error": {"status": "failed", "error_code": "timeout_error", "message": "took too long"},
    "rate_limited": {"status": "failed", "error_code": "rate_limited", "message": "too many jobs"},
    "validation_error": {"status": "failed", "error_code": "validation_error", "message": "bad mask"},
    "access_error": {"status": "failed", "error_code": "access_error", "message": "no entitlement"},
    "timeout": {"status": "timeout", "message": "job exceeded its time"},
    "canceled": {"status": "canceled", "message": "canceled by the user"},
    "cancelled": {"status": "cancelled", "message": "canceled by the user"},
    "mystery": {"status": "paused"},
}
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3,
        "poll_interval": 0.01, "poll_timeout": 5}


class Firefly:
    """Firefly Services as Adobe documents it: Fill Image Async refuses a prompt over 1,024 characters
    and a ``size`` that is not ``{width, height}`` (400 ``validation_error``); a job's ``fate`` picks its
    terminal status and error code; cancel answers 409 ``job_completed`` once the job has ended."""

    def __init__(self):
        self.served, self.uploads, self.bodies, self.jobs, self.fates = Counter(), {}, [], {}, []
        self.cancels = 0

    def app(self):
        async def token(request: Request):
            form = await request.form()
            assert form["grant_type"] == "client_credentials" and form["client_secret"] == SECRET
            return JSONResponse({"access_token": "tok-1", "token_type": "bearer", "expires_in": 86399})

        def authed(request: Request) -> bool:
            self.served[f"{request.method} {request.url.path.split('/urn')[0]}"] += 1
            return request.headers.get("authorization") == "Bearer tok-1" and request.headers.get("x-api-key") == "cid"

        async def upload(request: Request):
            if not authed(request):
                return JSONResponse({"error_code": "unauthorized", "message": "bad token"}, status_code=401)
            upload_id = f"up-{len(self.uploads)}"
            self.uploads[upload_id] = (request.headers["content-type"], await request.body())
            return JSONResponse({"images": [{"id": upload_id}]})

        async def fill(request: Request):
            if not authed(request):
                return JSONResponse({"error_code": "unauthorized", "message": "bad token"}, status_code=401)
            fate = self.fates.pop(0) if self.fates else "ok"
            if fate == "throttle":
                return JSONResponse({"error_code": "too_many_requests", "message": "slow down"}, status_code=429,
                                    headers={"retry-after": "0"})
            body = await request.json()
            size = body.get("size", {})
            if len(body.get("prompt", "x")) > 1024 or not 1 <= len(body.get("prompt", "x")):
                return JSONResponse({"error_code": "validation_error", "message": "prompt: 1 to 1024 characters"},
                                    status_code=400)
            if not isinstance(size, dict) or set(size) != {"width", "height"}:
                return JSONResponse({"error_code": "validation_error", "message": "size: width and height"},
                                    status_code=400)
            self.bodies.append(body)
            job = f"urn:firefly:jobs:{len(self.jobs)}"
            self.jobs[job] = {"fate": fate, "polls": 0, "image": body["image"]["source"]["uploadId"]}
            base = str(request.base_url).rstrip("/")
            return JSONResponse({"jobId": job, "statusUrl": f"{base}/v3/status/{job}",
                                 "cancelUrl": f"{base}/v3/cancel/{job}"}, status_code=202)

        async def status(request: Request):
            if not authed(request):
                return JSONResponse({"error_code": "unauthorized", "message": "bad token"}, status_code=401)
            job_id = request.path_params["job"]
            job = self.jobs[job_id]
            job["polls"] += 1
            if job["polls"] == 1:
                return JSONResponse({"jobId": job_id, "status": "running", "progress": 50})
            if job["fate"] == "policy":
                return JSONResponse({"jobId": job_id, "status": "failed", "error_code": "input_image_policy",
                                     "message": "The input image violates the content policy"})
            if job["fate"] in TERMINAL:
                return JSONResponse({"jobId": job_id, **TERMINAL[job["fate"]]})
            if job["fate"] == "slow":  # never finishes: the poll timeout ends it
                return JSONResponse({"jobId": job_id, "status": "running", "progress": 60})
            url = f"{str(request.base_url).rstrip('/')}/out/{job['image']}.png"
            return JSONResponse({"jobId": job_id, "status": "succeeded",
                                 "result": {"outputs": [{"seed": 1, "image": {"url": url}}], "size": {}}})

        async def output(request: Request):
            assert "authorization" not in request.headers  # pre-signed URL: no token
            return Response(self.uploads[request.path_params["name"]][1], media_type="image/png")

        async def cancel(request: Request):
            authed(request)
            self.cancels += 1
            job_id = request.path_params["job"]
            if job_id not in self.jobs:
                return JSONResponse({"error_code": "unknown_job_id", "message": "no such job"}, status_code=404)
            if self.jobs[job_id]["polls"] > 1:
                return JSONResponse({"error_code": "job_completed", "message": "job already finished"},
                                    status_code=409)
            return JSONResponse({"jobId": job_id, "status": "cancel_pending"})

        return Starlette(routes=[
            Route("/ims/token/v3", token, methods=["POST"]),
            Route("/v2/storage/image", upload, methods=["POST"]),
            Route("/v3/images/fill-async", fill, methods=["POST"]),
            Route("/v3/status/{job:path}", status, methods=["GET"]),
            Route("/v3/cancel/{job:path}", cancel, methods=["PUT"]),
            Route("/out/{name}.png", output, methods=["GET"]),
        ])


@pytest.fixture
def firefly(monkeypatch):
    fake = Firefly()
    with LoopbackServer(fake.app()) as server:
        conn = {"conn_type": "image_edit", "host": server.url, "login": "cid", "password": SECRET,
                "extra": {"backend": "firefly", "token_url": f"{server.url}/ims/token/v3", **FAST}}
        monkeypatch.setenv("AIRFLOW_CONN_FIREFLY_EDITS", json.dumps(conn))
        yield fake, ImageEditHook("firefly_edits").get_backend()


def recipe(tmp_path):
    return parse_recipe({"name": "t", "output": {"format": "png", "size": "96x96"}, "steps": [
        {"id": "bg", "prompt": "A clean white studio background.", "mask": "background",
         "local": {"op": "white_background", "params": {}}}]}, origin=(tmp_path / "r.yaml").as_uri())


def test_token_upload_fill_poll_download(firefly, tmp_path):
    fake, backend = firefly
    result = backend.edit(product_png(), recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert result.data[:4] == b"\x89PNG" and (result.width, result.height) == (96, 96)
    assert result.usage == [{"step": "bg", "provider": "firefly", "model": "firefly-fill-v3", "images": 1,
                             "job_id": "urn:firefly:jobs:0"}]
    body = fake.bodies[0]
    assert body["prompt"] == "A clean white studio background." and body["numVariations"] == 1
    assert body["size"] == {"width": 96, "height": 96}  # the input's own size (Firefly's default is 2048x2048)
    mask_type, mask = fake.uploads[body["mask"]["source"]["uploadId"]]
    assert mask_type == "image/png" and mask[:4] == b"\x89PNG"
    assert fake.served["GET /v3/status"] == 2 and fake.served["POST /v2/storage/image"] == 2
    assert SECRET not in repr(backend) and "tok-1" not in repr(backend)


def test_failed_job_is_final_and_throttling_is_retried(firefly, tmp_path):
    fake, backend = firefly
    fake.fates[:] = ["throttle", "policy"]
    with pytest.raises(EditError) as info:
        backend.edit(product_png(), recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert info.value.code == "input_image_policy" and not info.value.retryable
    assert fake.served["POST /v3/images/fill-async"] == 2  # the 429 was retried once, the failure was not


async def test_job_interface_and_cancel(firefly, tmp_path):
    fake, backend = firefly
    context = ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())
    job = await backend.asubmit(product_png(), recipe(tmp_path), 0, context)
    assert job["id"] == "urn:firefly:jobs:0" and SECRET not in json.dumps(job) and "tok-1" not in json.dumps(job)
    while (status := await backend.apoll(job)).state == "pending":
        pass
    data, usage = await backend.acollect(job, status)
    assert data[:4] == b"\x89PNG" and usage["job_id"] == job["id"]
    # the job has ended: Firefly answers 409 job_completed, which is final (never retried)
    assert await backend.acancel(job) is False and fake.cancels == 1
    assert await backend.acancel({**job, "cancel_url": job["cancel_url"].replace(":0", ":99")}) is False
    running = await backend.asubmit(product_png(), recipe(tmp_path), 0, context)
    assert await backend.acancel(running) is True and fake.cancels == 3
    await backend.transport.aclose()


# every documented terminal state and error code -> (our code, retryable)
EXPECTED = {
    "runtime_error": ("runtime_error", True), "timeout_error": ("timeout_error", True),
    "rate_limited": ("rate_limited", True), "validation_error": ("validation_error", False),
    "access_error": ("access_error", False), "timeout": ("timeout", True), "canceled": ("job_canceled", False),
    "cancelled": ("job_canceled", False), "mystery": ("unknown_status", False),
}


@pytest.mark.parametrize("fate", sorted(EXPECTED))
def test_each_documented_state_and_error_code_ends_the_poll(firefly, tmp_path, fate):
    fake, backend = firefly
    fake.fates[:] = [fate]
    with pytest.raises(EditError) as info:
        backend.edit(product_png(), recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert (info.value.code, info.value.retryable) == EXPECTED[fate]
    assert fake.served["GET /v3/status"] == 2  # ended at the first terminal answer, not at the poll timeout
    if fate == "mystery":
        assert "'paused'" in str(info.value)  # the raw value, named


@pytest.mark.parametrize("body", [{"status": "pending"}, {"status": "running", "progress": 10},
                                  {"status": "cancel_pending"}])
def test_pending_states(body):
    from airflow_image_catalog.backends.firefly import FireflyBackend

    assert FireflyBackend.status_from({"jobId": "j", **body}).state == "pending"


def test_a_prompt_over_1024_characters_is_refused_before_any_upload(firefly, tmp_path):
    fake, backend = firefly
    long = parse_recipe({"name": "long", "output": {"format": "png"}, "steps": [
        {"id": "ok", "prompt": "A white background.", "mask": "background", "local": {"op": "white_background"}},
        {"id": "wordy", "prompt": "x" * 1025, "mask": "background", "local": {"op": "white_background"}}]},
        origin=(tmp_path / "r.yaml").as_uri())
    with pytest.raises(EditError, match=r"step 'wordy' field 'prompt' has 1,025 characters.*at most 1,024") as info:
        backend.edit(product_png(), long, ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert not info.value.retryable and sum(fake.served.values()) == 0  # nothing sent, nothing billed
    exact = parse_recipe({"name": "edge", "output": {"format": "png"}, "steps": [
        {"id": "s", "prompt": "y" * 1024, "mask": "background", "local": {"op": "white_background"}}]},
        origin=(tmp_path / "r.yaml").as_uri())
    assert backend.edit(product_png(), exact, ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())).data
