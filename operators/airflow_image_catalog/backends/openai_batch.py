"""OpenAI Batch API for image edits: one JSONL file per recipe step of a chunk, at 50% of the price.

Per recipe step of a chunk: write one JSONL line per image ``{"custom_id", "method": "POST",
"url": "/v1/images/edits", "body": {...}}`` (the JSON form of an edit: images as
``images: [{"image_url": "data:image/png;base64,..."}]``, the mask as
``mask: {"image_url": ...}``; a batch line cannot carry multipart files), upload it with
``POST /files`` (``purpose=batch``), create ``POST /batches`` (``endpoint /v1/images/edits``,
``completion_window 24h``), poll ``GET /batches/{id}`` (``validating``, ``in_progress``,
``finalizing``, ``completed``, ``failed``, ``expired``, ``cancelling``, ``cancelled``), then
read ``GET /files/{output_file_id}/content`` and ``/files/{error_file_id}/content`` and map
every line back to its image by ``custom_id``. Usage records carry ``"batch": true``
(billed at 50%). The statuses are the ``Batch.status`` Literal of the official SDK
(``openai/types/batch.py``); any other fails the batch's images at once (``unknown_status``, the raw
value in the message) rather than being read as finished.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections import defaultdict
from typing import Any

from airflow_image_catalog.backends.base import (
    Capabilities,
    EditError,
    ImageContext,
    JobStatus,
    check_prompts,
)
from airflow_image_catalog.backends.http import Request, is_retryable_status
from airflow_image_catalog.backends.openai_images import OpenAIImagesBackend
from airflow_image_catalog.imaging.containers import MIME
from airflow_image_catalog.recipes import Recipe

ENDPOINT = "/v1/images/edits"
COMPLETION_WINDOW = "24h"
COMPLETION_WINDOW_S = 24 * 3600
PENDING = ("validating", "in_progress", "finalizing", "cancelling")
UNFINISHED = {"expired": "batch_expired", "cancelled": "batch_cancelled"}  # retryable: a new batch may finish
#: every status the SDK's ``Batch.status`` Literal names
STATUSES = (*PENDING, "failed", "completed", *UNFINISHED)


def data_url(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        mime = MIME.get((img.format or "png").lower(), "image/png")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def read_jsonl(data: bytes) -> dict[str, dict[str, Any]]:
    lines = (json.loads(line) for line in data.decode().splitlines() if line.strip())
    return {line["custom_id"]: line for line in lines if line.get("custom_id")}


def line_error(line: dict[str, Any]) -> JobStatus:
    """A failed line of an error (or output) file as a job status."""
    error = line.get("error") or {}
    response = line.get("response") or {}
    status = int(response.get("status_code") or 0)
    if not error and status:
        error = (response.get("body") or {}).get("error") or {}
    code = str(error.get("code") or (f"http_{status}" if status else "batch_line_failed"))
    retryable = code in UNFINISHED.values() or (is_retryable_status(status) if status else False)
    return JobStatus("failed", code=code, message=f"openai batch: {error.get('message') or code}",
                     retryable=retryable)


class OpenAIBatchBackend(OpenAIImagesBackend):
    """Image edits through the Batch API (job interface only: submit a chunk, poll, collect).

    Takes the options of :class:`~airflow_image_catalog.backends.openai_images.OpenAIImagesBackend`.
    """

    name = "openai_batch"
    # no per-image synchronous edit on this route: the operator runs the job loop; a batch may take its
    # whole completion window
    capabilities = Capabilities(concurrent=True, jobs=True, batch=True, jobs_only=True,
                                job_timeout_s=COMPLETION_WINDOW_S + 3600,
                                prompt_limit=OpenAIImagesBackend.capabilities.prompt_limit)
    jobs_in_flight = None  # one batch per chunk and step; the Batch API queues its lines itself

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._files: dict[str, dict[str, dict[str, Any]]] = {}
        self._file_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._cancelled: set[str] = set()

    def __repr__(self) -> str:
        return f"OpenAIBatchBackend(model={self.model!r}, transport={self.transport!r})"

    # -- submit ---------------------------------------------------------------------------
    def batch_line(self, custom_id: str, recipe: Recipe, index: int, image: bytes,
                   context: ImageContext) -> dict[str, Any]:
        step, output, size = self.step_setup(recipe, index)
        images, mask = self.step_inputs(step, image, context)
        body: dict[str, Any] = {**self.form(step, output, size), "images": [{"image_url": data_url(i)} for i in images]}
        body["n"] = int(body["n"])
        if "output_compression" in body:
            body["output_compression"] = int(body["output_compression"])
        if mask is not None:
            body["mask"] = {"image_url": data_url(mask)}
        return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}

    async def asubmit_many(self, entries: list[tuple[str, bytes, int, ImageContext]],
                           recipe: Recipe) -> dict[str, dict[str, Any]]:
        """One batch for ``(key, image, step_index, context)`` entries; returns a job per key."""
        check_prompts(recipe, self)  # every step's prompt, or a later step is refused after the first was paid
        lines = {key: self.batch_line(f"{key}:{recipe.steps[index].id}", recipe, index, image, context)
                 for key, image, index, context in entries}
        jsonl = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines.values()).encode()
        uploaded, _ = await self.transport.asend(Request(
            "POST", "files", op="files.create", data={"purpose": "batch"},
            # as the SDK uploads a file named image-edits.jsonl (httpx guesses no type for .jsonl)
            files=[("file", ("image-edits.jsonl", jsonl, "application/octet-stream"))]))
        created, _ = await self.transport.asend(Request(
            "POST", "batches", op="batches.create", billed_step="batch",  # its lines are billed as they run
            json={"input_file_id": uploaded.json()["id"], "endpoint": ENDPOINT,
                  "completion_window": COMPLETION_WINDOW, "metadata": {"recipe": recipe.name}}))
        batch_id = created.json()["id"]
        return {key: {"id": batch_id, "custom_id": lines[key]["custom_id"], "step": recipe.steps[index].id,
                      "size": lines[key]["body"]["size"]} for key, _, index, _ in entries}

    async def asubmit(self, image: bytes, recipe: Recipe, step_index: int, context: ImageContext) -> dict:
        return (await self.asubmit_many([(context.image_id, image, step_index, context)], recipe))[context.image_id]

    # -- poll -----------------------------------------------------------------------------
    async def _file(self, file_id: str) -> dict[str, dict[str, Any]]:
        """A result file's lines by ``custom_id`` (downloaded once per backend)."""
        async with self._file_locks[file_id]:
            if file_id not in self._files:
                response, _ = await self.transport.asend(Request("GET", f"files/{file_id}/content",
                                                                 op="files.content"))
                self._files[file_id] = read_jsonl(response.content)
        return self._files[file_id]

    async def _batch_statuses(self, batch_id: str, jobs: dict[str, dict]) -> dict[str, JobStatus]:
        response, _ = await self.transport.asend(Request("GET", f"batches/{batch_id}", op="batches.retrieve"))
        batch = response.json()
        state = batch.get("status", "")
        if state in PENDING:
            return {key: JobStatus("pending") for key in jobs}
        if state not in STATUSES:
            return {key: JobStatus("failed", code="unknown_status",
                                   message=f"openai batch {batch_id}: unknown batch status {state!r}") for key in jobs}
        if state == "failed":
            errors = (batch.get("errors") or {}).get("data") or [{}]
            message = f"openai batch {batch_id} failed: {errors[0].get('message') or 'validation failed'}"
            return {key: JobStatus("failed", code=str(errors[0].get("code") or "batch_failed"), message=message)
                    for key in jobs}
        failed = await self._file(batch["error_file_id"]) if batch.get("error_file_id") else {}
        output = batch.get("output_file_id")
        statuses = {}
        for key, job in jobs.items():
            if job["custom_id"] in failed:
                statuses[key] = line_error(failed[job["custom_id"]])
            elif output:
                statuses[key] = JobStatus("ready", result={"output_file_id": output})
            else:
                code = UNFINISHED.get(state, "batch_line_missing")
                statuses[key] = JobStatus("failed", code=code, retryable=True,
                                          message=f"openai batch {batch_id} ended {state} without a result")
        return statuses

    async def apoll_many(self, jobs: dict[str, dict]) -> dict[str, JobStatus]:
        """Poll each batch once, however many images it carries."""
        by_batch: defaultdict[str, dict[str, dict]] = defaultdict(dict)
        for key, job in jobs.items():
            by_batch[job["id"]][key] = job
        results = await asyncio.gather(*(self._batch_statuses(bid, group) for bid, group in by_batch.items()))
        return {key: status for statuses in results for key, status in statuses.items()}

    async def apoll(self, job: dict) -> JobStatus:
        return (await self.apoll_many({"job": job}))["job"]

    # -- collect / cancel -------------------------------------------------------------------
    async def acollect(self, job: dict, status: JobStatus) -> tuple[bytes, dict[str, Any]]:
        line = (await self._file(status.result["output_file_id"])).get(job["custom_id"])
        if line is None:
            raise EditError(f"openai batch {job['id']}: no result line for {job['custom_id']}", retryable=True,
                            code="batch_line_missing")
        response = line.get("response") or {}
        if line.get("error") or int(response.get("status_code") or 0) >= 400:
            failed = line_error(line)
            raise EditError(failed.message or "", retryable=failed.retryable, code=failed.code)
        return self.parse(job["step"], response.get("body") or {}, batch=True)

    async def acancel(self, job: dict) -> bool:
        """Cancel the job's batch (once, however many images it carries)."""
        if job["id"] in self._cancelled:
            return True
        self._cancelled.add(job["id"])
        await self.transport.asend(Request("POST", f"batches/{job['id']}/cancel", op="batches.cancel"))
        return True
