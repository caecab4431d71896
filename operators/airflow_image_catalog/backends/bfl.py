"""Black Forest Labs FLUX.1 Kontext [pro]/[max] and FLUX.2: submit, poll ``polling_url``, download.

``POST {base}/v1/{model}`` with header ``x-key`` and JSON ``prompt``,
``input_image`` (base64; references as ``input_image_2``..), ``output_format``,
``safety_tolerance`` (at most 2 with input images), ``seed``, ``aspect_ratio``
-> ``{id, polling_url}``. Polling ``polling_url`` gives ``Pending``, ``Ready``
(``result.sample``: a signed URL that expires after 10 minutes, downloaded at
once and without the key), ``Request Moderated`` / ``Content Moderated`` (final),
``Error`` or ``Task not found`` (retryable: a resubmission may succeed). HTTP 402
(out of credits) is final. FLUX Kontext edits by instruction: recipe masks are
not sent (the step records ``mask_ignored``).

Input images per request (the image plus its references) are capped per model, and a recipe
asking for more is refused before anything is sent: FLUX.1 Kontext [pro] and [max] take ``input_image``
.. ``input_image_4``, FLUX.2 [pro] / [max] / [flex] up to 8, FLUX.2 [klein] up to 4 (BFL's OpenAPI
document, api.bfl.ai/openapi.json: ``FluxKontextProInputs``, ``Flux2Inputs``, ``Flux2FlexInputs``,
``Flux2KleinInputs`` "like Pro but max 4 images"; the API ignores an undeclared field, so a fifth
Kontext image would be dropped silently). A status not in BFL's ``StatusResponse`` enum (``Task not
found``, ``Pending``, ``Request Moderated``, ``Content Moderated``, ``Ready``, ``Error``) fails at once
with the raw value, as BFL's own SDK does (black-forest-labs/flux ``src/flux/api.py``,
``ImageRequest.retrieve``); a top-level ``error`` text is kept in the message.

BFL limits *tasks in flight* (submitted, not yet completed), 24 per account and 6 for FLUX.1
Kontext [max], not HTTP requests (black-forest-labs/skills ``bfl-api/references/rate-limiting.md``):
each image holds a task slot (:class:`~airflow_image_catalog.backends.http.TaskSlots`) from its
submit until its result is downloaded, and BFL's ``X-RateLimit-Remaining: 0`` pauses new submits
until ``X-RateLimit-Reset``. BFL labels the FLUX.1 models legacy and recommends FLUX.2 for editing
(black-forest-labs/skills ``flux-best-practices/rules/flux1-models.md`` and
``model-selection-guide.md``): a Kontext model is still taken, with a warning.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Generator
from typing import Any

from airflow_image_catalog.backends.base import Capabilities, EditError, EditResult, ImageContext, JobStatus
from airflow_image_catalog.backends.http import HttpTransport, PlanDriven, Request, TaskSlots, poll_plan
from airflow_image_catalog.backends.imaging import conform, provider_image
from airflow_image_catalog.recipes import Recipe, RecipeStep

log = logging.getLogger(__name__)

DEFAULT_MODEL = "flux-kontext-pro"
CREDITS = {"flux-kontext-pro": 4.0, "flux-kontext-max": 8.0}  # 1 credit = $0.01
FINAL = {"Request Moderated": "request_moderated", "Content Moderated": "content_moderated"}
RETRYABLE = {"Error": "provider_error", "Task not found": "task_not_found"}
OUT_OF_CREDITS = "insufficient_credits"
PENDING = "Pending"
#: tasks in flight BFL admits per account, by model-name prefix (the rest: 24)
MAX_TASKS = {"flux-kontext-max": 6}
DEFAULT_MAX_TASKS = 24
#: FLUX.1 models BFL calls legacy ("use FLUX.2 with references instead")
LEGACY_PREFIXES = ("flux-kontext-",)
#: the most input images (the image and its references) one request takes, by model-name prefix
MAX_INPUT_IMAGES = {"flux-kontext-": 4, "flux-2-klein": 4, "flux-2-": 8}


def max_input_images(model: str) -> int:
    """The model's cap; a model outside the documented families gets the smallest documented one."""
    prefixes = [prefix for prefix in MAX_INPUT_IMAGES if model.startswith(prefix)]
    return MAX_INPUT_IMAGES[max(prefixes, key=len)] if prefixes else min(MAX_INPUT_IMAGES.values())


def task_limit(model: str) -> int:
    """How many of ``model``'s tasks BFL lets one account have in flight."""
    return next((limit for prefix, limit in MAX_TASKS.items() if model.startswith(prefix)), DEFAULT_MAX_TASKS)


def check_references(recipe: Recipe, model: str) -> None:
    """Refuse, before anything is sent or billed, a step with more input images than ``model`` takes."""
    cap = max_input_images(model)
    for step in recipe.steps:
        if 1 + len(step.reference_images) > cap:
            raise EditError(f"bfl: recipe {recipe.name!r} step {step.id!r} field 'reference_images' lists "
                            f"{len(step.reference_images)} images; {model} takes at most {cap - 1} references "
                            f"(input_image .. input_image_{cap})", code="too_many_references")


class BFLBackend(PlanDriven):
    """FLUX Kontext / FLUX.2 through the BFL API (sync ``edit``, async ``aedit`` and the job interface).

    :param transport: the shared :class:`~airflow_image_catalog.backends.http.HttpTransport` (``x-key`` auth).
    :param model: ``flux-kontext-pro`` (default), ``flux-kontext-max``, ``flux-2-pro``, ...
    :param safety_tolerance: 0 (strict) .. 2 (the maximum with input images).
    :param seed: fixed seed for reproducible edits.
    :param aspect_ratio: e.g. ``1:1``; by default the input's.
    :param max_tasks: tasks in flight at once (default BFL's limit for the model: 24, 6 for Kontext [max]);
        lower it when other clients share the account.
    """

    name = "bfl"
    # BFL charges credits when a task is created (the local edit service models it so)
    capabilities = Capabilities(concurrent=True, jobs=True, bills_at_submit=True)
    IDENTITY_FIELDS = ("safety_tolerance", "seed", "aspect_ratio")  # settings that change the output (cache key)

    def __init__(self, transport: HttpTransport, *, model: str = DEFAULT_MODEL, safety_tolerance: int = 2,
                 seed: int | None = None, aspect_ratio: str | None = None, max_tasks: int | None = None):
        self.transport = transport
        self.model = model or DEFAULT_MODEL
        self.safety_tolerance = max(0, min(int(safety_tolerance), 2))
        self.seed = seed
        self.aspect_ratio = aspect_ratio
        limit = task_limit(self.model)
        if max_tasks not in (None, ""):
            try:
                limit = min(int(max_tasks), limit)
            except (TypeError, ValueError):
                raise EditError(f"bfl: max_tasks must be an integer, got {max_tasks!r}", code="invalid_max_tasks") \
                    from None
            if limit < 1:
                raise EditError(f"bfl: max_tasks must be at least 1, got {max_tasks!r}", code="invalid_max_tasks")
        self.tasks = TaskSlots(limit)
        if self.model.startswith(LEGACY_PREFIXES):
            log.warning("bfl: %s is a FLUX.1 model, which BFL labels legacy; it recommends FLUX.2 (flux-2-pro, "
                        "flux-2-max, flux-2-klein-*) for editing", self.model)

    @property
    def jobs_in_flight(self) -> int:
        return self.tasks.limit

    def __repr__(self) -> str:
        return f"BFLBackend(model={self.model!r}, transport={self.transport!r})"

    # -- the contract, one request at a time -----------------------------------------------
    def submit_request(self, step: RecipeStep, image: bytes, context: ImageContext, final: bool,
                       output_format: str) -> Request:
        body: dict[str, Any] = {"prompt": step.prompt, "input_image": base64.b64encode(image).decode(),
                                "output_format": "jpeg" if final and output_format == "jpeg" else "png",
                                "safety_tolerance": self.safety_tolerance}
        for number, ref in enumerate(context.references(step), 2):
            body[f"input_image_{number}"] = base64.b64encode(ref).decode()
        if self.seed is not None:
            body["seed"] = int(self.seed)
        if self.aspect_ratio:
            body["aspect_ratio"] = self.aspect_ratio
        return Request("POST", f"v1/{self.model}", op=f"submit[{step.id}]", json=body, billed_step=step.id)

    def job_from(self, step: RecipeStep, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("id") or not body.get("polling_url"):
            raise EditError(f"bfl submit[{step.id}]: response has no id / polling_url", retryable=True,
                            code="bad_response")
        credits = body.get("cost", CREDITS.get(self.model))
        return {"id": body["id"], "polling_url": body["polling_url"], "step": step.id, "credits": credits,
                "mask_ignored": step.mask is not None, "submitted_at": time.time()}

    @staticmethod
    def poll_request(job: dict[str, Any]) -> Request:
        return Request("GET", job["polling_url"], op="poll")

    @staticmethod
    def status_from(body: dict[str, Any]) -> JobStatus:
        status = body.get("status", "")
        if status == PENDING:
            return JobStatus("pending")
        if status == "Ready":
            return JobStatus("ready", result={"sample": (body.get("result") or {}).get("sample")})
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        detail = str(result.get("error") or body.get("error") or body.get("details") or "")
        if status in FINAL:
            return JobStatus("failed", code=FINAL[status], message=f"BFL: {status} {detail}".strip())
        if status in RETRYABLE:
            return JobStatus("failed", code=RETRYABLE[status], message=f"BFL: {status} {detail}".strip(),
                             retryable=True)
        return JobStatus("failed", code="unknown_status",
                         message=f"BFL: unknown task status {status!r} {detail}".strip())

    @staticmethod
    def download_request(status: JobStatus) -> Request:
        # the signed sample URL is on a delivery host: never send it the key
        return Request("GET", status.result["sample"], op="download", auth=False)

    def usage_record(self, job: dict[str, Any]) -> dict[str, Any]:
        return {"step": job["step"], "provider": "bfl", "model": self.model, "images": 1, "credits": job["credits"],
                "job_id": job["id"]}

    def submit_usage(self, job: dict[str, Any]) -> dict[str, Any]:
        """What creating ``job`` was billed, booked even when the job dies without a result."""
        return self.usage_record(job)

    def raise_failed(self, status: JobStatus, job: dict[str, Any]) -> None:
        """A job that ended without a result: billed at submit (booked through ``usage``); a retryable
        end (Error, Task not found) means that job is dead, so a retry submits a new one."""
        raise EditError(f"bfl job {job['id']}: {status.message}", retryable=status.retryable, code=status.code,
                        job_lost=status.retryable, usage=[self.usage_record(job)])

    def expired(self, exc: EditError, job: dict[str, Any]) -> EditError:
        if exc.status in (403, 404, 410):
            return EditError(f"bfl job {job['id']}: result URL expired before download (HTTP {exc.status})",
                             retryable=True, code="sample_expired", status=exc.status, job_lost=True,
                             usage=[self.usage_record(job)])
        return exc

    # -- the whole recipe, polling in the caller (sync edit / async aedit) ------------------
    def edit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult:
        with self.tasks.slot():  # the image's one task in flight at a time, from submit to download
            return self.transport.run(self.plan(source, recipe, context))

    async def aedit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult:
        async with self.tasks.aslot():
            return await self.transport.arun(self.plan(source, recipe, context))

    def plan(self, source: bytes, recipe: Recipe, context: ImageContext) -> Generator[Any, Any, EditResult]:
        check_references(recipe, self.model)
        usage: list[dict[str, Any]] = []
        try:
            return (yield from self._plan(source, recipe, context, usage))
        except EditError as exc:  # the steps billed before the failure go with it, to be booked
            exc.usage = usage + exc.usage
            raise

    def _plan(self, source: bytes, recipe: Recipe, context: ImageContext,
              usage: list[dict[str, Any]]) -> Generator[Any, Any, EditResult]:
        image, steps = source, []
        output = recipe.step_output(recipe.steps[-1])
        for index, step in enumerate(recipe.steps):
            response = yield self.submit_request(step, image, context, index == len(recipe.steps) - 1,
                                                 output.format)
            job = self.job_from(step, response.json())
            try:
                status = yield from poll_plan(self.poll_request(job), self.status_from, self.transport.settings,
                                              f"bfl job {job['id']}")
            except EditError as exc:
                if exc.code == "timeout":  # still Pending past poll_timeout: give up on this (billed) job
                    exc.job_lost, exc.usage = True, [self.usage_record(job)]
                raise
            if status.state == "failed":
                self.raise_failed(status, job)
            try:
                image = (yield self.download_request(status)).content
            except EditError as exc:
                raise self.expired(exc, job) from None
            provider_image(image, f"bfl job {job['id']}")
            usage.append(self.usage_record(job))
            steps.append({"id": step.id, "model": self.model, "job_id": job["id"],
                          **({"mask_ignored": True} if job["mask_ignored"] else {})})
        data, width, height = conform(image, output)
        return EditResult(data, output.format, width, height, usage=usage, steps=steps)

    # -- the job interface (deferrable operator + trigger) ----------------------------------
    async def asubmit(self, image: bytes, recipe: Recipe, step_index: int, context: ImageContext) -> dict:
        check_references(recipe, self.model)
        step = recipe.steps[step_index]
        final = step_index == len(recipe.steps) - 1
        response, _ = await self.transport.asend(
            self.submit_request(step, image, context, final, recipe.step_output(recipe.steps[-1]).format))
        return self.job_from(step, response.json())

    async def apoll(self, job: dict) -> JobStatus:
        response, _ = await self.transport.asend(self.poll_request(job))
        return self.status_from(response.json())

    async def acollect(self, job: dict, status: JobStatus) -> tuple[bytes, dict[str, Any]]:
        try:
            response, _ = await self.transport.asend(self.download_request(status))
        except EditError as exc:
            raise self.expired(exc, job) from None
        return provider_image(response.content, f"bfl job {job['id']}"), self.usage_record(job)

    async def acancel(self, job: dict) -> bool:
        """BFL has no cancel endpoint: the job runs out on its own (and is billed)."""
        log.info("bfl job %s cannot be cancelled (no cancel endpoint)", job.get("id"))
        return False
