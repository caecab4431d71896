"""OpenAI's ``POST /v1/images/edits`` on the local edit service: the API's validation rules, then
the local engine; also run for each line of a Batch (:mod:`.batches`)."""

from __future__ import annotations

import base64
import io
import secrets
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service import editor
from airflow_image_catalog.tooling.service.protocol import (
    FIXED_SIZES,
    QUALITIES,
    BadRequest,
    authorised,
    openai_error,
)
from airflow_image_catalog.tooling.service.state import ServiceState


def _decode_mask(data: bytes, first_size: tuple[int, int]):
    """OpenAI masks: PNG with alpha, alpha 0 = edit here, same size as the first image."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.format != "PNG" or "A" not in img.getbands():
            raise BadRequest("invalid_mask", "mask must be a PNG with an alpha channel", "mask")
        if img.size != first_size:
            raise BadRequest("invalid_mask", f"mask size {img.size[0]}x{img.size[1]} does not match "
                             f"image size {first_size[0]}x{first_size[1]}", "mask")
        alpha = np.asarray(img.getchannel("A"))
    return alpha < 128


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise BadRequest("invalid_image", f"could not read the image: {exc}", "image") from None


def check_size(model: str, size: str | None) -> None:
    """The API's size rules (gpt-image-2: any WxH, sides multiple of 16, ratio <= 3, <= 3840x2160)."""
    if size in (None, "", "auto"):
        return
    if not model.startswith("gpt-image-2"):
        if size not in FIXED_SIZES:
            raise BadRequest("invalid_size", f"size must be one of {', '.join(FIXED_SIZES)}", "size")
        return
    try:
        width, height = editor.parse_size(size)
    except ValueError:
        raise BadRequest("invalid_size", f"invalid size {size!r}", "size") from None
    long, short = max(width, height), min(width, height)
    if width % 16 or height % 16 or long > 3 * short or long > 3840 or width * height > 3840 * 2160:
        raise BadRequest("invalid_size", f"invalid size {size!r} for {model}", "size")


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
    """Validate an images/edits form and run it: the response body."""
    parts = [("image[]", p) for p in form.getlist("image[]")] + [("image", p) for p in form.getlist("image")]
    images = [await part.read() for _, part in parts]
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    mask = await form.get("mask").read() if form.get("mask") is not None else None
    return await run_edit(images, mask, fields, state=state, kind="images.edit", fault_path=request.url.path,
                          idempotency_key=request.headers.get("idempotency-key"))


async def run_edit(images: list[bytes], mask_png: bytes | None, form: dict[str, Any], *,
                   state: ServiceState | None = None, kind: str = "images.edit", fault_path: str | None = None,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Validate one images/edits request (multipart fields or a JSON body) and run it: the response body.

    With ``state`` the edit is recorded as performed (``kind``) once it succeeded, and a
    ``drift`` rule matching ``fault_path`` and the prompt may claim it (``None``: never).
    """
    prompt = str(form.get("prompt") or "")
    model = str(form.get("model") or "gpt-image-2")
    if not images:
        raise BadRequest("missing_required_parameter", "image is required", "image")
    if not prompt.strip():
        raise BadRequest("missing_required_parameter", "prompt is required", "prompt")
    if len(images) > 16:
        raise BadRequest("invalid_value", "at most 16 images", "image")
    if form.get("input_fidelity") is not None and model.startswith("gpt-image-2"):
        raise BadRequest("invalid_value", "input_fidelity is not supported for gpt-image-2", "input_fidelity")
    n = int(form.get("n") or 1)
    if not 1 <= n <= 10:
        raise BadRequest("invalid_value", "n must be between 1 and 10", "n")
    size, quality = form.get("size"), str(form.get("quality") or "auto")
    if quality not in QUALITIES:
        raise BadRequest("invalid_value", f"quality must be one of {', '.join(QUALITIES)}", "quality")
    check_size(model, size)
    output_format = str(form.get("output_format") or "png")
    sizes = [_image_size(data) for data in images]
    mask = _decode_mask(mask_png, sizes[0]) if mask_png is not None else None
    compression = int(form.get("output_compression") or 92)
    drift = state is not None and state.take_drift(fault_path, prompt)
    try:
        data, width, height = await run_in_threadpool(
            editor.edit_pixels, images, prompt, mask=mask, size=size, output_format=output_format,
            quality=max(compression, 1), drift=drift)
    except Exception as exc:  # engine errors are the image's fault, like the API's 400s
        raise BadRequest("invalid_image", str(exc), "image") from None
    if state is not None:
        state.record(kind, images[0], prompt, model, idempotency_key)
    high = model.startswith("gpt-image-2") or form.get("input_fidelity") == "high"
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(data).decode()} for _ in range(n)],
        "size": f"{width}x{height}",
        "quality": quality,
        "background": form.get("background") or "auto",
        "output_format": output_format,
        "usage": editor.usage(sizes, prompt, (width, height), quality=quality, high_fidelity=high, n=n, model=model),
    }
    return body


def image_routes(state: ServiceState) -> list[Route]:
    async def images_edit(request: Request) -> Response:
        if not authorised(request, state.api_key):
            return openai_error(401, "invalid_api_key", "Incorrect API key provided.")
        try:
            async with request.form(max_files=32, max_part_size=50 * 1024 * 1024) as form:
                state.log.append(describe(request, form))
                body = await _edit_request(form, state, request)
        except BadRequest as exc:
            return openai_error(400, exc.code, str(exc), param=exc.param)
        return JSONResponse(body, headers={"x-request-id": f"req_{secrets.token_hex(8)}"})

    return [Route("/v1/images/edits", images_edit, methods=["POST"])]
