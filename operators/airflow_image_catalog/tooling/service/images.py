"""OpenAI's ``POST /v1/images/edits`` on the local edit service: the API's validation rules, then
the local engine; also run for each line of a Batch (:mod:`.batches`)."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service import editor
from airflow_image_catalog.tooling.service.openai_rules import Part, check_edit
from airflow_image_catalog.tooling.service.protocol import AZURE_EDIT, BadRequest, authorised, openai_error
from airflow_image_catalog.tooling.service.state import ServiceState
from airflow_image_catalog.tooling.service.usage import edit_usage


def describe(request: Request, form) -> dict[str, Any]:
    """A request's shape for tests: fields, file parts, which auth header (not its value), query."""
    return {
        "path": request.url.path,
        "query": dict(request.query_params),
        "auth": [h for h in ("authorization", "api-key", "x-key") if h in request.headers],
        "headers": {k: v for k, v in request.headers.items() if k.startswith("openai-")},
        "fields": {k: v for k, v in form.multi_items() if isinstance(v, str)},
        "files": [(k, v.filename, v.content_type, v.size) for k, v in form.multi_items() if not isinstance(v, str)],
    }


async def _edit_request(form, state: ServiceState, request: Request) -> dict[str, Any]:
    """Read an images/edits form (``image`` or ``image[]`` parts, ``mask``) and run it: the response body."""
    images = [Part(name, part.content_type, await part.read())
              for name in ("image", "image[]") for part in form.getlist(name) if not isinstance(part, str)]
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    upload = form.get("mask")
    mask = Part("mask", upload.content_type, await upload.read()) if upload is not None and not isinstance(
        upload, str) else None
    return await run_edit(images, mask, fields, state=state, kind="images.edit", fault_path=request.url.path,
                          idempotency_key=request.headers.get("idempotency-key"))


async def run_edit(images: list[Part], mask: Part | None, form: dict[str, Any], *,
                   state: ServiceState | None = None, kind: str = "images.edit", fault_path: str | None = None,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Check one images/edits request (multipart fields or a JSON body) the way the API does
    (:mod:`.openai_rules`), run it on the engine: the response body, with the usage of :mod:`.usage`.

    With ``state`` the edit is recorded as performed (``kind``) once it succeeded, and a
    ``drift`` rule matching ``fault_path`` and the prompt may claim it (``None``: never).
    """
    checked = check_edit(form, images, mask)
    drift = state is not None and state.take_drift(fault_path, checked.prompt)
    size = None if checked.size == "auto" else checked.size
    defects: list[str] = []
    try:
        data, width, height = await run_in_threadpool(
            editor.edit_pixels, [part.data for part in images], checked.prompt, mask=checked.mask, size=size,
            output_format=checked.output_format, quality=max(checked.compression, 1), drift=drift,
            model=checked.model, defects=defects)
    except Exception as exc:  # engine errors are the image's fault, like the API's 400s
        raise BadRequest("invalid_image", str(exc), "image") from None
    if state is not None:
        state.record(kind, images[0].data, checked.prompt, checked.model, idempotency_key,
                     defect=defects[0] if defects else None)
    return {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(data).decode()} for _ in range(checked.n)],
        "size": f"{width}x{height}",
        "quality": checked.quality,
        "background": checked.background,
        "output_format": checked.output_format,
        "usage": edit_usage(checked.rules.name, checked.sizes, checked.prompt, checked.size, checked.quality,
                            checked.fidelity, checked.n),
    }


def image_routes(state: ServiceState) -> list[Route]:
    async def images_edit(request: Request) -> Response:
        if not authorised(request, state.api_key):
            return openai_error(401, "invalid_api_key", "Incorrect API key provided.")
        if AZURE_EDIT.match(request.url.path) and not request.query_params.get("api-version"):
            return openai_error(404, "404", "Resource not found")  # Azure's answer without an api-version
        try:
            async with request.form(max_files=32, max_part_size=64 * 1024 * 1024) as form:
                state.log.append(describe(request, form))
                body = await _edit_request(form, state, request)
        except BadRequest as exc:
            return openai_error(exc.status, exc.code, str(exc), param=exc.param)
        return JSONResponse(body, headers={"x-request-id": f"req_{secrets.token_hex(8)}"})

    return [Route("/v1/images/edits", images_edit, methods=["POST"]),
            Route("/openai/deployments/{deployment}/images/edits", images_edit, methods=["POST"])]
