"""The local edit service's ASGI app: OpenAI images/edits, Files + Batch, and BFL submit/poll.

Backed by the local engine; answers with realistic ``usage`` and ``x-ratelimit-*``
headers; counts every request it serves; injects the faults of its :class:`FaultPlan`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from operators.service import editor
from operators.service.faults import ERROR_CODES, JOB_KINDS, REQUEST_KINDS, Fault, FaultPlan

FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
BFL_CREDITS = {"flux-kontext-pro": 4.0, "flux-kontext-max": 8.0, "flux-2-pro": 3.0, "flux-2-max": 7.0}
SAMPLE_TTL_S = 600.0
CONTROL = "/_service/"


def openai_error(status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


@dataclass
class Job:
    id: str
    model: str
    fate: str | None
    prompt: str
    output_format: str
    done: bool = False
    data: bytes | None = None
    error: str | None = None
    ready_at: float | None = None
    cancelled: bool = False


@dataclass
class ServiceState:
    """Everything the service remembers; tests and ``/_service/stats`` read it."""

    api_key: str | None = None
    requests_per_minute: int = 600
    sample_ttl_s: float = SAMPLE_TTL_S
    faults: FaultPlan = field(default_factory=FaultPlan)
    served: Counter = field(default_factory=Counter)
    jobs: dict[str, Job] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Files: metadata + "content"
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Batch objects
    log: deque = field(default_factory=lambda: deque(maxlen=200))  # request shapes, never key values
    _window: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self._lock:
            self.served[key] += 1
            self.served["total"] += 1

    def requests(self, key: str = "total") -> int:
        return self.served[key]

    def rate_headers(self) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            self._window.append(now)
            while self._window and now - self._window[0] > 60:
                self._window.popleft()
            remaining = max(self.requests_per_minute - len(self._window), 0)
            reset = 60 - (now - self._window[0]) if remaining == 0 else 60 / self.requests_per_minute
        return {
            "x-ratelimit-limit-requests": str(self.requests_per_minute),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{max(reset, 0.001):.3f}s",
        }

    def reset(self) -> None:
        with self._lock:
            self.served.clear()
            self.jobs.clear()
            self.files.clear()
            self.batches.clear()
            self._window.clear()
            self.log.clear()
        self.faults.set([])


class FaultsAndCounting:
    """ASGI middleware: counts requests and applies request-level faults before routing."""

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(CONTROL):
            return await self.app(scope, receive, send)
        self.state.count(f"{scope['method']} {scope['path']}")
        fault = self.state.faults.take(scope["path"], REQUEST_KINDS)
        if fault is not None and fault.kind in ("hang", "latency"):
            await asyncio.sleep(fault.seconds)
        elif fault is not None:
            return await self._fail(fault, scope, receive, send)
        return await self.app(scope, receive, send)

    async def _fail(self, fault: Fault, scope, receive, send):
        if fault.kind == "drop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})
            return None  # the server closes the connection mid-body
        headers = self.state.rate_headers()
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.kind == "moderation":
            response = openai_error(400, fault.code or "moderation_blocked",
                                    "Your request was rejected as a result of our safety system.", headers=headers)
        else:
            code = fault.code or ERROR_CODES.get(fault.status, f"http_{fault.status}")
            response = openai_error(fault.status, code, f"injected fault: HTTP {fault.status}", headers=headers)
        return await response(scope, receive, send)


def _authorised(request: Request, state: ServiceState) -> bool:
    if state.api_key is None:
        return True
    bearer = request.headers.get("authorization", "")
    offered = [bearer[7:] if bearer.lower().startswith("bearer ") else None,
               request.headers.get("api-key"), request.headers.get("x-key")]
    return any(key is not None and secrets.compare_digest(key, state.api_key) for key in offered)


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


async def _edit_request(form) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate an images/edits form and run it; returns the response body and headers."""
    parts = [("image[]", p) for p in form.getlist("image[]")] + [("image", p) for p in form.getlist("image")]
    images = [await part.read() for _, part in parts]
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    mask = await form.get("mask").read() if form.get("mask") is not None else None
    return await run_edit(images, mask, fields), {"x-request-id": f"req_{secrets.token_hex(8)}"}


async def run_edit(images: list[bytes], mask_png: bytes | None, form: dict[str, Any]) -> dict[str, Any]:
    """Validate one images/edits request (multipart fields or a JSON body) and run it: the response body."""
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
    check_size(model, size)
    output_format = str(form.get("output_format") or "png")
    sizes = [_image_size(data) for data in images]
    mask = _decode_mask(mask_png, sizes[0]) if mask_png is not None else None
    compression = int(form.get("output_compression") or 92)
    try:
        data, width, height = await run_in_threadpool(
            editor.edit_pixels, images, prompt, mask=mask, size=size, output_format=output_format,
            quality=max(compression, 1))
    except Exception as exc:  # engine errors are the image's fault, like the API's 400s
        raise BadRequest("invalid_image", str(exc), "image") from None
    high = model.startswith("gpt-image-2") or form.get("input_fidelity") == "high"
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(data).decode()} for _ in range(n)],
        "size": f"{width}x{height}",
        "quality": quality,
        "background": form.get("background") or "auto",
        "output_format": output_format,
        "usage": editor.usage(sizes, prompt, (width, height), quality=quality, high_fidelity=high, n=n),
    }
    return body


def build_app(state: ServiceState) -> Any:
    async def images_edit(request: Request) -> Response:
        headers = state.rate_headers()
        if not _authorised(request, state):
            return openai_error(401, "invalid_api_key", "Incorrect API key provided.", headers=headers)
        try:
            async with request.form(max_files=32, max_part_size=50 * 1024 * 1024) as form:
                state.log.append(describe(request, form))
                body, extra = await _edit_request(form)
        except BadRequest as exc:
            return openai_error(400, exc.code, str(exc), param=exc.param, headers=headers)
        return JSONResponse(body, headers={**headers, **extra})

    async def stats(request: Request) -> Response:
        return JSONResponse({"served": dict(state.served), "faults": state.faults.to_list(),
                             "jobs": len(state.jobs)})

    async def set_faults(request: Request) -> Response:
        payload = await request.json()
        try:
            state.faults.set(payload.get("faults", []))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": state.faults.to_list()})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    from operators.service.batches import batch_routes
    from operators.service.bfl import bfl_routes

    routes = [
        Route("/v1/images/edits", images_edit, methods=["POST"]),
        Route(CONTROL + "stats", stats, methods=["GET"]),
        Route(CONTROL + "faults", set_faults, methods=["POST"]),
        Route(CONTROL + "reset", reset, methods=["POST"]),
        *batch_routes(state),
        *bfl_routes(state),
    ]
    return FaultsAndCounting(Starlette(routes=routes), state)


__all__ = ["JOB_KINDS", "BadRequest", "Job", "ServiceState", "build_app", "check_size", "openai_error", "run_edit"]
