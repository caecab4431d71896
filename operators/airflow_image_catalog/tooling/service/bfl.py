"""The Black Forest Labs contract on the local edit service: submit, poll ``polling_url``, download.

``POST /v1/flux-kontext-pro`` (or ``-max``, ``flux-2-*``) with header ``x-key`` and
JSON ``prompt``, ``input_image`` (base64), ``input_image_2``.. (references),
``output_format`` -> ``{id, polling_url, cost, input_mp, output_mp}`` (credits by BFL's published prices:
:func:`cost`). ``GET /v1/get_result?id=`` ->
``Pending`` / ``Ready`` (``result.sample``) / ``Request Moderated`` /
``Content Moderated`` / ``Error`` / ``Task not found``. Samples expire after
``sample_ttl_s``. A created job is the paid work (``bfl.submit`` in
``ServiceState.performed``, BFL charges at submit); a submit with an ``Idempotency-Key``
already answered gets the same job back (:class:`~airflow_image_catalog.tooling.service.layers.Idempotency`).

Each model's body is read as BFL's OpenAPI document (api.bfl.ai/openapi.json, mirrored in
tryAGI/BlackForestLabs ``src/libs/BlackForestLabs/openapi.json``) declares it: ``FluxKontextProInputs``
(both Kontext models) has ``input_image`` .. ``input_image_4`` and ``safety_tolerance`` 0..6,
``Flux2Inputs`` (FLUX.2 [pro] / [max]) and ``Flux2FlexInputs`` ``input_image`` .. ``input_image_8`` and 0..5,
``Flux2KleinInputs`` (FLUX.2 [klein] 4B / 9B) .. ``input_image_4`` and 0..5; ``output_format``
is ``jpeg`` / ``png`` / ``webp`` (``OutputFormat``). A value outside a declared bound or enum, a missing
or non-string ``prompt`` is refused 422 in FastAPI's ``HTTPValidationError`` shape (``{"detail": [{"loc",
"msg", "type"}]}``, the 422 the document declares); a field the model's schema does not declare (say
``input_image_5`` for Kontext) is not read: those schemas, unlike the outpainting tool's, do not set
``additionalProperties: false``, so the API ignores it as FastAPI does. An edit without ``input_image``
(text-to-image, which the real API takes) is refused: this service only edits.

Tasks in flight (submitted, not yet ended) are limited as BFL limits them, 24 per account and 6
for FLUX.1 Kontext [max] (``ServiceState.bfl_max_tasks`` overrides both): a submit beyond answers
429 ``{"error": "rate_limit_exceeded", "message"}`` with ``Retry-After``; every submit answer carries
``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (epoch seconds), the shape
BFL documents (black-forest-labs/skills ``bfl-api/references/rate-limiting.md``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service import editor
from airflow_image_catalog.tooling.service.faults import BFL_KINDS
from airflow_image_catalog.tooling.service.protocol import BFL_CREDITS, BFL_CREDITS_PER_MP
from airflow_image_catalog.tooling.service.state import Job, ServiceState

MODELS = tuple(BFL_CREDITS)


#: per model: the input image fields its schema declares and its ``safety_tolerance`` maximum (the OpenAPI document)
SCHEMAS = {"flux-kontext-pro": (4, 6), "flux-kontext-max": (4, 6), "flux-2-pro": (8, 5), "flux-2-max": (8, 5),
           "flux-2-flex": (8, 5), "flux-2-klein-4b": (4, 5), "flux-2-klein-9b": (4, 5)}
#: a megapixel as BFL counts it ("1 MP = 1,048,576 px", black-forest-labs/skills model-selection-guide.md)
MEGAPIXEL = 1_048_576


def cost(model: str, sizes: list[tuple[int, int]]) -> tuple[float, float | None, float | None]:
    """What a submit answers as ``cost`` (credits), ``input_mp`` and ``output_mp``, by BFL's published
    formula for FLUX.2, ``(firstMP + (outputMP-1) * mpPrice) + (inputMP * mpPrice)`` (black-forest-labs/skills
    ``skills/bfl-api/SKILL.md``), megapixels to 2 decimals as ``AsyncResponse`` gives them; the output is
    the first input's size (an edit). A FLUX.1 Kontext image is a flat price. Kept apart from the
    estimator (``pipeline/costing/pricing``), which rounds megapixels up, so reconciling can find a gap."""
    if model not in BFL_CREDITS_PER_MP:
        return BFL_CREDITS[model], None, None
    input_mp = round(sum(w * h for w, h in sizes) / MEGAPIXEL, 2)
    output_mp = round(sizes[0][0] * sizes[0][1] / MEGAPIXEL, 2)
    per_mp = BFL_CREDITS_PER_MP[model]
    credits = BFL_CREDITS[model] + max(output_mp - 1, 0) * per_mp + input_mp * per_mp
    return round(credits, 2), input_mp, output_mp
OUTPUT_FORMATS = ("jpeg", "png", "webp")


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _invalid(field: str, kind: str, message: str, value: object = None) -> JSONResponse:
    """FastAPI's 422 for a body that fails the model's schema (``HTTPValidationError``)."""
    error = {"type": kind, "loc": ["body", field], "msg": message, "input": value}
    return JSONResponse({"detail": [error]}, status_code=422)


def _check_body(model: str, body: object) -> JSONResponse | None:
    """The schema's refusals, in FastAPI's words (pydantic v2's messages and error types)."""
    if not isinstance(body, dict):
        return JSONResponse({"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                         "msg": "Input should be a valid dictionary or object to extract fields from",
                                         "input": body}]}, status_code=422)
    if "prompt" not in body:
        return _invalid("prompt", "missing", "Field required")
    if not isinstance(body["prompt"], str):
        return _invalid("prompt", "string_type", "Input should be a valid string", body["prompt"])
    tolerance, most = body.get("safety_tolerance", 2), SCHEMAS[model][1]
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        return _invalid("safety_tolerance", "int_type", "Input should be a valid integer", tolerance)
    if tolerance < 0:
        return _invalid("safety_tolerance", "greater_than_equal", "Input should be greater than or equal to 0",
                        tolerance)
    if tolerance > most:
        return _invalid("safety_tolerance", "less_than_equal", f"Input should be less than or equal to {most}",
                        tolerance)
    if body.get("output_format") is not None and body["output_format"] not in OUTPUT_FORMATS:
        return _invalid("output_format", "enum", "Input should be 'jpeg', 'png' or 'webp'", body["output_format"])
    return None


async def _process(job: Job, images: list[bytes], seconds: float = 0.0) -> None:
    if seconds:
        await asyncio.sleep(seconds)
    try:
        job.data, _, _ = await run_in_threadpool(editor.edit_pixels, images, job.prompt,
                                                 output_format=job.output_format, drift=job.drift)
    except Exception as exc:  # the engine refused the image: BFL reports "Error"
        job.error = str(exc)
    job.done, job.ready_at = True, time.monotonic()


def _pixel_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except OSError:  # not an image: the task ends "Error"; price it as one megapixel
        return 1024, 1024


def _limit_group(model: str) -> str:
    return "kontext-max" if model == "flux-kontext-max" else "standard"


TASK_LIMITS = {"kontext-max": 6, "standard": 24}


def _active(state: ServiceState, group: str) -> int:
    """Tasks of ``group`` submitted and not yet ended (a stuck ``Pending`` never ends)."""
    ended = ("bfl_error", "request_moderated", "bfl_not_found")
    return sum(1 for job in list(state.jobs.values())
               if _limit_group(job.model) == group and not job.done and job.fate not in ended and not job.cancelled)


def _rate_headers(limit: int, active: int) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(limit - active, 0)),
            "X-RateLimit-Reset": str(int(time.time()) + 1)}


def bfl_routes(state: ServiceState) -> list[Route]:
    tasks: set[asyncio.Task] = set()

    async def submit(request: Request) -> Response:
        model = request.path_params["model"]
        if model not in MODELS:
            return _detail(404, f"Not Found: unknown model {model}")
        if not request.headers.get("x-key") or (state.api_key and request.headers["x-key"] != state.api_key):
            return _detail(403, "Not authenticated: invalid or missing x-key")
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                             "input": {}}]}, status_code=422)
        refused = _check_body(model, body)
        if refused is not None:
            return refused
        prompt = body["prompt"]
        images = []
        fields = ["input_image", *(f"input_image_{i}" for i in range(2, SCHEMAS[model][0] + 1))]
        for key in fields:  # the schema's fields only: any other is ignored, as by the API
            if body.get(key):
                try:
                    images.append(base64.b64decode(body[key], validate=True))
                except (binascii.Error, ValueError):
                    return _detail(422, f"{key}: not valid base64")
        if not images:
            return _detail(422, "input_image: this service only edits (text-to-image is not emulated)")
        output_format = body.get("output_format") or "jpeg"
        group = _limit_group(model)
        limit = state.bfl_max_tasks or TASK_LIMITS[group]
        if _active(state, group) >= limit:
            state.note("rate_limited")
            return JSONResponse({"error": "rate_limit_exceeded", "message": f"Too many concurrent requests: "
                                 f"{limit} tasks in flight allowed"}, status_code=429,
                                headers={**_rate_headers(limit, limit), "Retry-After": "1"})
        fault = state.faults.take(request.url.path, BFL_KINDS, prompt=prompt)
        job = Job(uuid.uuid4().hex, model, fault.kind if fault else None, prompt, output_format, inputs=len(images))
        state.jobs[job.id] = job
        state.record("bfl.submit", images[0], prompt, model, request.headers.get("idempotency-key"), job_id=job.id)
        if job.fate not in ("bfl_pending", "bfl_error", "request_moderated"):
            job.drift = state.take_drift(request.url.path, prompt)  # only a job that yields an image drifts
            task = asyncio.create_task(_process(job, images, state.bfl_task_seconds))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        base = str(request.base_url).rstrip("/")
        credits, input_mp, output_mp = cost(model, [_pixel_size(image) for image in images])
        return JSONResponse({"id": job.id, "polling_url": f"{base}/v1/get_result?id={job.id}", "cost": credits,
                             "input_mp": input_mp, "output_mp": output_mp},
                            headers=_rate_headers(limit, _active(state, group)))

    async def get_result(request: Request) -> Response:
        job = state.jobs.get(request.query_params.get("id", ""))
        if job is None or job.fate == "bfl_not_found":
            return JSONResponse({"id": request.query_params.get("id"), "status": "Task not found"})
        status, result = "Pending", None
        if job.fate == "bfl_error":
            status = "Error"
        elif job.fate == "request_moderated":
            status = "Request Moderated"
        elif job.fate == "bfl_pending" or not job.done:
            status = "Pending"
        elif job.fate == "content_moderated":
            status = "Content Moderated"
        elif job.error:
            status, result = "Error", {"error": job.error}
        else:
            ext = {"jpeg": "jpg"}.get(job.output_format, job.output_format)
            base = str(request.base_url).rstrip("/")
            status = "Ready"
            result = {"sample": f"{base}/_delivery/{job.id}.{ext}?se=signed", "prompt": job.prompt}
        return JSONResponse({"id": job.id, "status": status, "result": result, "progress": None})

    async def delivery(request: Request) -> Response:
        job = state.jobs.get(request.path_params["name"].split(".")[0])
        if job is None or job.data is None:
            return Response("BlobNotFound", status_code=404)
        if job.fate == "bfl_expired" or time.monotonic() - job.ready_at > state.sample_ttl_s:
            return Response("AuthenticationFailed: Signed expiry time has passed", status_code=403)
        media = f"image/{job.output_format}"
        return Response(job.data, media_type=media)

    return [
        Route("/v1/get_result", get_result, methods=["GET"]),
        Route("/_delivery/{name}", delivery, methods=["GET"]),
        Route("/v1/{model}", submit, methods=["POST"]),
    ]
