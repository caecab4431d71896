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
IMAGE = product_png(640, 600)  # Fill takes a mask (of the image's size) whose longer side is at least 600 px
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
    # the rest of the SDK's ErrorCode enum (Firefly-Services/firefly-services-sdk-js docs/firefly/enums/ErrorCode.md)
    **{code: {"status": "failed", "error_code": code, "message": code.replace("_", " ")} for code in (
        "bad_request", "invalid_content_type", "prompt_unsafe", "input_media_unsafe", "output_media_unsafe",
        "language_not_supported", "not_implemented", "model_not_loaded")},
    "mystery": {"status": "paused"},
}
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3,
        "poll_interval": 0.01, "poll_timeout": 5}


def _error(status: int, code: str, message: str, **extra) -> JSONResponse:
    """Adobe's error shape (fill-image-v3.json ``ApiError``): ``error_code`` and ``message``."""
    return JSONResponse({"error_code": code, "message": message, **extra}, status_code=status)


def _invalid(loc: str, msg: str) -> JSONResponse:
    return _error(422, "validation_error", msg, validation_errors=[{"loc": ["body", *loc.split(".")], "msg": msg,
                                                                    "type": "value_error"}])


UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp")  # fill-image-v3.json: supported input formats


class Firefly:
    """Firefly Services as Adobe documents it (AdobeDocs/ff-services-docs ``fill-image-v3.json``, the async
    guide): a token and the client id on every call (403 ``access_error``); uploads of image/jpeg, png or webp
    only (415 ``invalid_content_type``), not empty (400 ``bad_request``); Fill Image Async refuses (422
    ``validation_error`` with ``validation_errors``) a prompt or negativePrompt outside 1..1,024 characters,
    ``numVariations`` outside 1..4, ``seeds`` not 1..4 unique integers matching it, a ``size`` that is not
    ``{width, height}`` in 1..2,688, an unknown upload id, a mask whose pixel size differs from the image's or
    whose longer side is under 600 px; a job's ``fate`` picks its terminal status and error code; cancel
    answers 409 ``job_completed`` / ``job_already_canceled`` / ``job_timeout`` once the job has ended and 404
    ``unknown_job_id``."""

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

        def denied() -> JSONResponse:
            return _error(403, "access_error", "invalid token or client id")

        async def upload(request: Request):
            if not authed(request):
                return denied()
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in UPLOAD_TYPES:
                return _error(415, "invalid_content_type", f"content type {kind or 'missing'} is not supported: "
                              f"{', '.join(UPLOAD_TYPES)}")
            data = await request.body()
            if not data:
                return _error(400, "bad_request", "empty input body")
            upload_id = f"up-{len(self.uploads)}"
            self.uploads[upload_id] = (kind, data)
            return JSONResponse({"images": [{"id": upload_id}]})

        def pixel_size(upload_id: str) -> tuple[int, int]:
            import io

            from PIL import Image

            return Image.open(io.BytesIO(self.uploads[upload_id][1])).size

        def refusal(body) -> JSONResponse | None:
            for field in ("prompt", "negativePrompt"):
                if field in body and not (isinstance(body[field], str) and
                                          (field == "negativePrompt" or body[field]) and len(body[field]) <= 1024):
                    return _invalid(field, f"{field}: a string of 1 to 1024 characters")
            variations = body.get("numVariations", 1)
            if not isinstance(variations, int) or not 1 <= variations <= 4:
                return _invalid("numVariations", "numVariations: an integer 1 to 4")
            seeds = body.get("seeds")
            if seeds is not None and (not isinstance(seeds, list) or not 1 <= len(seeds) <= 4
                                      or len(set(seeds)) != len(seeds) or len(seeds) != variations
                                      or not all(isinstance(seed, int) for seed in seeds)):
                return _invalid("seeds", "seeds: 1 to 4 unique integers, as many as numVariations")
            size = body.get("size", {"width": 2048, "height": 2048})
            if not isinstance(size, dict) or set(size) != {"width", "height"} or not all(
                    isinstance(size[k], int) and 1 <= size[k] <= 2688 for k in size):
                return _invalid("size", "size: width and height, integers 1 to 2688")
            image = ((body.get("image") or {}).get("source") or {}).get("uploadId")
            mask = ((body.get("mask") or {}).get("source") or {}).get("uploadId")
            for loc, upload_id in (("image.source.uploadId", image), ("mask.source.uploadId", mask)):
                if upload_id not in self.uploads:
                    return _invalid(loc, f"{loc}: no uploaded object {upload_id!r}")
            if pixel_size(mask) != pixel_size(image):
                return _invalid("mask", "the input image and mask image must match in pixel dimensions")
            if max(pixel_size(mask)) < 600:
                return _invalid("mask", "the minimum accepted size for the larger side of the mask is 600 px")
            return None

        async def fill(request: Request):
            if not authed(request):
                return denied()
            fate = self.fates.pop(0) if self.fates else "ok"
            if fate == "throttle":
                return JSONResponse({"error_code": "too_many_requests", "message": "slow down"}, status_code=429,
                                    headers={"retry-after": "0"})
            body = await request.json()
            refused = refusal(body)
            if refused is not None:
                return refused
            self.bodies.append(body)
            job = f"urn:firefly:jobs:{len(self.jobs)}"
            self.jobs[job] = {"fate": fate, "polls": 0, "image": body["image"]["source"]["uploadId"]}
            base = str(request.base_url).rstrip("/")
            return JSONResponse({"jobId": job, "statusUrl": f"{base}/v3/status/{job}",
                                 "cancelUrl": f"{base}/v3/cancel/{job}"}, status_code=202)

        async def status(request: Request):
            if not authed(request):
                return denied()
            job_id = request.path_params["job"]
            job = self.jobs[job_id]
            job["polls"] += 1
            if job.get("canceled"):  # cancel_pending, then canceled
                job["cancel_polls"] = job.get("cancel_polls", 0) + 1
                return JSONResponse({"jobId": job_id, "status": "cancel_pending" if job["cancel_polls"] == 1
                                     else "canceled", "message": "canceled by the user"})
            if job["polls"] == 1:
                return JSONResponse({"jobId": job_id, "status": "running", "progress": 50})
            if job["fate"] == "policy":
                return JSONResponse({"jobId": job_id, "status": "failed", "error_code": "input_media_unsafe",
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
            job = self.jobs[job_id]
            if job.get("canceled"):
                return _error(409, "job_already_canceled", "the job was canceled already")
            if job["polls"] > 1:  # it has ended: timed out, or completed
                code = "job_timeout" if job["fate"] == "timeout" else "job_completed"
                return _error(409, code, "the job has already ended")
            job["canceled"] = True
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
    result = backend.edit(IMAGE, recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert result.data[:4] == b"\x89PNG" and (result.width, result.height) == (96, 96)
    assert result.usage == [{"step": "bg", "provider": "firefly", "model": "firefly-fill-v3", "images": 1,
                             "job_id": "urn:firefly:jobs:0"}]
    body = fake.bodies[0]
    assert body["prompt"] == "A clean white studio background." and body["numVariations"] == 1
    assert body["size"] == {"width": 640, "height": 600}  # the input's own size (Firefly's default is 2048x2048)
    mask_type, mask = fake.uploads[body["mask"]["source"]["uploadId"]]
    assert mask_type == "image/png" and mask[:4] == b"\x89PNG"
    assert fake.served["GET /v3/status"] == 2 and fake.served["POST /v2/storage/image"] == 2
    assert SECRET not in repr(backend) and "tok-1" not in repr(backend)


def test_failed_job_is_final_and_throttling_is_retried(firefly, tmp_path):
    fake, backend = firefly
    fake.fates[:] = ["throttle", "policy"]
    with pytest.raises(EditError) as info:
        backend.edit(IMAGE, recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert info.value.code == "input_media_unsafe" and not info.value.retryable
    assert fake.served["POST /v3/images/fill-async"] == 2  # the 429 was retried once, the failure was not


async def test_job_interface_and_cancel(firefly, tmp_path):
    fake, backend = firefly
    context = ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())
    job = await backend.asubmit(IMAGE, recipe(tmp_path), 0, context)
    assert job["id"] == "urn:firefly:jobs:0" and SECRET not in json.dumps(job) and "tok-1" not in json.dumps(job)
    while (status := await backend.apoll(job)).state == "pending":
        pass
    data, usage = await backend.acollect(job, status)
    assert data[:4] == b"\x89PNG" and usage["job_id"] == job["id"]
    # the job has ended: Firefly answers 409 job_completed, which is final (never retried)
    assert await backend.acancel(job) is False and fake.cancels == 1
    assert await backend.acancel({**job, "cancel_url": job["cancel_url"].replace(":0", ":99")}) is False
    running = await backend.asubmit(IMAGE, recipe(tmp_path), 0, context)
    assert await backend.acancel(running) is True and fake.cancels == 3
    await backend.transport.aclose()


# every documented terminal state and error code -> (our code, retryable)
EXPECTED = {
    "runtime_error": ("runtime_error", True), "timeout_error": ("timeout_error", True),
    "rate_limited": ("rate_limited", True), "validation_error": ("validation_error", False),
    "access_error": ("access_error", False), "timeout": ("timeout", True), "canceled": ("job_canceled", False),
    "cancelled": ("job_canceled", False), "mystery": ("unknown_status", False),
    "bad_request": ("bad_request", False), "invalid_content_type": ("invalid_content_type", False),
    "prompt_unsafe": ("prompt_unsafe", False), "input_media_unsafe": ("input_media_unsafe", False),
    "output_media_unsafe": ("output_media_unsafe", False), "language_not_supported": ("language_not_supported", False),
    "not_implemented": ("not_implemented", False), "model_not_loaded": ("model_not_loaded", True),
}


@pytest.mark.parametrize("fate", sorted(EXPECTED))
def test_each_documented_state_and_error_code_ends_the_poll(firefly, tmp_path, fate):
    fake, backend = firefly
    fake.fates[:] = [fate]
    with pytest.raises(EditError) as info:
        backend.edit(IMAGE, recipe(tmp_path), ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
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
        backend.edit(IMAGE, long, ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri()))
    assert not info.value.retryable and sum(fake.served.values()) == 0  # nothing sent, nothing billed
    exact = parse_recipe({"name": "edge", "output": {"format": "png"}, "steps": [
        {"id": "s", "prompt": "y" * 1024, "mask": "background", "local": {"op": "white_background"}}]},
        origin=(tmp_path / "r.yaml").as_uri())
    assert backend.edit(IMAGE, exact, ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())).data
