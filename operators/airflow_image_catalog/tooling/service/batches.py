"""The OpenAI Files and Batch contracts on the local edit service, for ``/v1/images/edits`` batches.

``POST /v1/files`` (multipart ``purpose``, ``file``) -> a File object; ``GET /v1/files/{id}/content``;
``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window``) -> a Batch
object, processed in the background by the local engine line by line; ``GET /v1/batches/{id}``;
``POST /v1/batches/{id}/cancel``. Successful lines go to the output file, failed ones to the
error file, each ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
Faults: ``batch_line_error`` per line, ``batch_expired`` / ``batch_failed`` per batch.
Each line executed is recorded as performed (``batch.line``) and takes ``latency_s``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service.faults import BATCH_KINDS, LINE_KINDS
from airflow_image_catalog.tooling.service.images import run_edit
from airflow_image_catalog.tooling.service.openai_rules import Part
from airflow_image_catalog.tooling.service.protocol import BadRequest, authorised, openai_error
from airflow_image_catalog.tooling.service.state import ServiceState

ENDPOINTS = ("/v1/images/edits",)
EXPIRED = {"code": "batch_expired",
           "message": "This request could not be executed before the completion window expired."}


def _new_file(state: ServiceState, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
    file = {"id": f"file-{secrets.token_hex(12)}", "object": "file", "bytes": len(content),
            "created_at": int(time.time()), "filename": filename, "purpose": purpose}
    state.files[file["id"]] = {**file, "content": content}
    return file


def _data_url(value: Any, param: str) -> Part:
    """An image reference of a JSON edit body: ``{"image_url": "data:<type>;base64,..."}``."""
    url = (value or {}).get("image_url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise BadRequest("invalid_image_url", "images must be base64 data URLs on this service", param)
    header, payload = url.split(";base64,", 1)
    try:
        return Part(param, header[len("data:"):] or None, base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest("invalid_image_url", "image_url is not valid base64", param) from None


async def _run_line(state: ServiceState, line: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """One batch line -> (ok, result line)."""
    result: dict[str, Any] = {"id": f"batch_req_{secrets.token_hex(8)}", "custom_id": line.get("custom_id"),
                              "response": None, "error": None}
    request_id = f"req_{secrets.token_hex(8)}"
    body = line.get("body") or {}
    fault = state.faults.take(str(line.get("url", "")), LINE_KINDS, prompt=str(body.get("prompt") or ""))
    try:
        if fault is not None:
            raise BadRequest(fault.code or "invalid_image", "injected fault: the image could not be processed")
        images = [_data_url(item, "images") for item in body.get("images") or []]
        mask = _data_url(body["mask"], "mask") if body.get("mask") else None
        if state.latency_s > 0:
            await asyncio.sleep(state.latency_s)
        answer = await run_edit(images, mask, {k: v for k, v in body.items() if k not in ("images", "mask")},
                                state=state, kind="batch.line")
    except BadRequest as exc:
        error = {"message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": exc.code}
        result["response"] = {"status_code": exc.status, "request_id": request_id, "body": {"error": error}}
        return False, result
    result["response"] = {"status_code": 200, "request_id": request_id, "body": answer}
    return True, result


async def _process(state: ServiceState, batch: dict[str, Any], lines: list[dict[str, Any]], fate: str | None):
    batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
    done, failed = [], []
    for line in lines:
        if batch["status"] == "cancelling" or fate == "batch_expired":
            failed.append({"id": f"batch_req_{secrets.token_hex(8)}", "custom_id": line.get("custom_id"),
                           "response": None, "error": EXPIRED if fate else {"code": "batch_cancelled",
                                                                           "message": "The batch was cancelled."}})
            continue
        ok, result = await _run_line(state, line)
        (done if ok else failed).append(result)
    for key, results in (("output_file_id", done), ("error_file_id", failed)):
        if results:
            content = "".join(json.dumps(r) + "\n" for r in results).encode()
            batch[key] = _new_file(state, content, f"{batch['id']}_{key[:-8]}.jsonl", "batch_output")["id"]
    batch["request_counts"] = {"total": len(lines), "completed": len(done), "failed": len(failed)}
    final = "expired" if fate == "batch_expired" else ("cancelled" if batch["status"] == "cancelling" else "completed")
    batch["status"], batch[f"{final}_at"] = final, int(time.time())


def batch_routes(state: ServiceState) -> list[Route]:
    tasks: set[asyncio.Task] = set()

    def denied(request: Request) -> Response | None:
        if authorised(request, state.api_key):
            return None
        return openai_error(401, "invalid_api_key", "Incorrect API key provided.")

    async def upload(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        async with request.form(max_part_size=200 * 1024 * 1024) as form:
            part, purpose = form.get("file"), str(form.get("purpose") or "")
            if part is None or isinstance(part, str) or not purpose:
                return openai_error(400, "missing_required_parameter", "file and purpose are required")
            content = await part.read()
            state.log.append({"path": request.url.path, "purpose": purpose, "filename": part.filename})
            return JSONResponse(_new_file(state, content, part.filename or "upload", purpose))

    async def content(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        file = state.files.get(request.path_params["file_id"])
        if file is None:
            return openai_error(404, "not_found", "No such File object")
        return Response(file["content"], media_type="application/octet-stream")

    async def create(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        body = await request.json()
        file = state.files.get(body.get("input_file_id", ""))
        if body.get("endpoint") not in ENDPOINTS:
            return openai_error(400, "invalid_value", f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
        if body.get("completion_window") != "24h":
            return openai_error(400, "invalid_value", "completion_window must be 24h", param="completion_window")
        if file is None or file["purpose"] != "batch":
            return openai_error(400, "invalid_value", "input_file_id is not a batch file", param="input_file_id")
        batch = {"id": f"batch_{secrets.token_hex(12)}", "object": "batch", "endpoint": body["endpoint"],
                 "errors": None, "input_file_id": file["id"], "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata")}
        state.batches[batch["id"]] = batch
        try:
            lines = [json.loads(text) for text in file["content"].decode().splitlines() if text.strip()]
        except (UnicodeDecodeError, ValueError):
            lines = None
        fault = state.faults.take(request.url.path, BATCH_KINDS)
        if lines is None or (fault is not None and fault.kind == "batch_failed") or any(
                line.get("url") != body["endpoint"] or line.get("method") != "POST" for line in lines):
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "line": 1,
                                                           "message": "lines must POST to the batch's endpoint"}]}
            return JSONResponse(batch)
        task = asyncio.create_task(_process(state, batch, lines, fault.kind if fault else None))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse(dict(batch))

    async def retrieve(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        batch = state.batches.get(request.path_params["batch_id"])
        if batch is None:
            return openai_error(404, "not_found", "No such Batch object")
        return JSONResponse(batch)

    async def cancel(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        batch = state.batches.get(request.path_params["batch_id"])
        if batch is None:
            return openai_error(404, "not_found", "No such Batch object")
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelling"
        return JSONResponse(batch)

    return [
        Route("/v1/files", upload, methods=["POST"]),
        Route("/v1/files/{file_id}/content", content, methods=["GET"]),
        Route("/v1/batches", create, methods=["POST"]),
        Route("/v1/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
    ]


__all__ = ["batch_routes"]
