"""Adobe Firefly Services: Fill Image (async jobs) with an OAuth client-credentials token.

Per recipe step: upload the image and the mask (white = fill) with ``POST {base}/v2/storage/image``
(raw bytes, ``Content-Type`` of the image) -> ``{"images": [{"id"}]}``; submit
``POST {base}/v3/images/fill-async`` with ``{"image": {"source": {"uploadId"}}, "mask":
{"source": {"uploadId"}}, "prompt", "numVariations": 1, "size": {"width", "height"}}`` -> ``{jobId,
statusUrl, cancelUrl}``; poll ``statusUrl``; on ``succeeded`` download ``result.outputs[0].image.url``
(pre-signed: never sent the token).

The contract, from Adobe's documents (sources in docs/backends.md "Adobe Firefly"):

- Fill Image Async (developer.adobe.com/firefly-services/docs/firefly-api/guides/api/generative_fill/
  V3_Async): ``prompt`` optional, 1 to 1,024 characters, ``numVariations`` 1-4, ``size`` optional (the output
  is 2048x2048 unless sent, so the input's own size is sent: a fill keeps the canvas).
- Job states (the async guide, .../guides/how-tos/using-async-apis): ``pending``, ``running``,
  ``succeeded``, ``failed``, ``canceled``; the status examples also show ``cancel_pending`` and
  ``timeout`` (and clients spell ``cancelled``). A state not in that list fails at once, naming it.
- Error codes: ``runtime_error``, ``timeout_error``, ``rate_limited`` are transient (a new job may
  succeed); ``validation_error``, ``access_error``, ``invalid_content_type``, ``empty_input_body``,
  ``bad_request`` and any undocumented code are final.
- The Fill V3 OpenAPI spec (AdobeDocs/ff-services-docs ``fill-image-v3.json``): ``size`` width and height
  1 to 2,688; the mask's longer side at least 600 px and the image and mask of the same pixel size; input
  types image/jpeg, image/png, image/webp; errors ``{"error_code", "message"}`` (400 ``bad_request``, 403
  ``access_error``, 408 ``timeout_error``, 415 ``invalid_content_type``, 422 ``validation_error`` /
  ``prompt_unsafe`` / ``input_media_unsafe`` / ``output_media_unsafe`` / ``language_not_supported``, 500
  ``runtime_error``, 501 ``not_implemented``, 503 ``model_not_loaded``), the codes of the SDK's
  ``ErrorCode`` enum (Firefly-Services/firefly-services-sdk-js). An image Fill would refuse for its size
  is refused before anything is uploaded.
- Cancel (``PUT cancelUrl``): 409 (``job_completed``, ``job_already_canceled``, ``job_timeout``) and
  404 (``unknown_job_id``) mean there is nothing left to cancel: never retried.
Every Firefly request carries ``Authorization: Bearer <token>`` and ``x-api-key: <client id>``;
the token comes from Adobe IMS (``POST /ims/token/v3``, ``grant_type=client_credentials``) and
is renewed before it expires. A step without a recipe mask fills the background (the local
engine's segmentation): Fill needs a mask.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from airflow_image_catalog.backends.base import (
    Capabilities,
    EditError,
    EditResult,
    ImageContext,
    JobStatus,
    PromptLimit,
    check_prompts,
)
from airflow_image_catalog.backends.http import HttpTransport, PlanDriven, Request, poll_plan
from airflow_image_catalog.backends.imaging import edit_region, final_result, image_size, white_mask_png
from airflow_image_catalog.recipes import Recipe, RecipeStep

TOKEN_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
SCOPES = "openid,AdobeID,session,additional_info,read_organizations,firefly_api,ff_apis"
MODEL = "firefly-fill-v3"
#: Firefly V3 async job states, mapped to ours
PENDING_STATES = frozenset({"pending", "running", "cancel_pending"})
CANCELED_STATES = frozenset({"canceled", "cancelled"})
#: documented error codes after which a fresh job may succeed; every other code is final
RETRYABLE_CODES = frozenset({"runtime_error", "timeout_error", "rate_limited", "model_not_loaded"})
FINAL_CODES = frozenset({"validation_error", "access_error", "invalid_content_type", "empty_input_body",
                         "bad_request", "prompt_unsafe", "input_media_unsafe", "output_media_unsafe",
                         "language_not_supported", "not_implemented"})
#: Fill V3's ``size`` bounds and the mask's smallest longer side (fill-image-v3.json)
MAX_SIDE, MIN_MASK_SIDE = 2688, 600
#: cancel answers meaning the job already ended (or never existed): nothing to cancel
CANCEL_ENDED = frozenset({409, 404})
def check_size(width: int, height: int, where: str) -> None:
    """Refuse, before any upload, an image whose mask (of the same size) or ``size`` Fill would refuse."""
    if max(width, height) < MIN_MASK_SIDE:
        raise EditError(f"firefly {where}: the image is {width}x{height}; Fill Image takes a mask (of the image's "
                        f"size) whose longer side is at least {MIN_MASK_SIDE} px: upscale the source or use another "
                        "backend", code="image_too_small")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise EditError(f"firefly {where}: the image is {width}x{height}; Fill Image's size takes at most "
                        f"{MAX_SIDE} px a side", code="image_too_large")


def _mime(data: bytes) -> str:
    return "image/jpeg" if data[:2] == b"\xff\xd8" else ("image/webp" if data[8:12] == b"WEBP" else "image/png")


class FireflyBackend(PlanDriven):
    """Firefly Fill Image through Firefly Services (sync ``edit``, async ``aedit``, the job interface).

    :param transport: :class:`~airflow_image_catalog.backends.http.HttpTransport` whose auth header is ``x-api-key``.
    :param client_id: the Adobe Developer Console credential's client id.
    :param client_secret: its secret (the connection's password; never logged).
    :param token_url: the IMS token endpoint.
    :param scopes: OAuth scopes of the credential.
    :param seed: fixed seed for reproducible fills.
    """

    name = "firefly"
    # Fill Image Async: prompt [1 .. 1024] characters
    capabilities = Capabilities(concurrent=True, jobs=True, prompt_limit=PromptLimit(1024))
    IDENTITY_FIELDS = ("seed",)  # settings that change the output (cache key)
    model = MODEL
    jobs_in_flight = None  # no jobs-in-flight cap applied: the transport paces the requests

    def __init__(self, transport: HttpTransport, *, client_id: str, client_secret: str, token_url: str = TOKEN_URL,
                 scopes: str = SCOPES, seed: int | None = None):
        self.transport = transport
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.scopes = scopes
        self.seed = seed
        self._token: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"FireflyBackend(client_id={self.client_id!r}, transport={self.transport!r})"

    # -- auth ----------------------------------------------------------------------------------
    def _authed(self, request: Request) -> Generator[Any, Any, Request]:
        """Add a fresh bearer token to ``request`` (fetching one from IMS when needed)."""
        if self._token is None or self._token[1] - 60 < time.time():
            response = yield Request("POST", self.token_url, op="ims.token", auth=False, data={
                "grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self._client_secret, "scope": self.scopes})
            body = response.json()
            self._token = (body["access_token"], time.time() + float(body.get("expires_in", 3600)))
        request.headers["Authorization"] = f"Bearer {self._token[0]}"
        return request

    def _send(self, request: Request) -> Generator[Any, Any, Any]:
        return (yield (yield from self._authed(request)))

    # -- one step --------------------------------------------------------------------------------
    def _upload(self, data: bytes, what: str) -> Generator[Any, Any, str]:
        response = yield from self._send(Request("POST", "v2/storage/image", op=f"upload[{what}]", content=data,
                                                 headers={"Content-Type": _mime(data)}))
        return response.json()["images"][0]["id"]

    def submit_plan(self, step: RecipeStep, image: bytes, context: ImageContext) -> Generator[Any, Any, dict]:
        width, height = image_size(image)
        check_size(width, height, f"fill[{step.id}]")
        region = edit_region(step, image, context)
        if region is None:
            from airflow_image_catalog.imaging.engine import decode_image, find_subject

            region = ~find_subject(decode_image(image))
        image_id = yield from self._upload(image, "image")
        mask_id = yield from self._upload(white_mask_png(region), "mask")
        body: dict[str, Any] = {"image": {"source": {"uploadId": image_id}},
                                "mask": {"source": {"uploadId": mask_id}, "invert": False},
                                "numVariations": 1, "size": {"width": width, "height": height}}
        if step.prompt:  # optional; when sent, 1 to 1,024 characters
            body["prompt"] = step.prompt
        if self.seed is not None:
            body["seeds"] = [int(self.seed)]
        response = yield from self._send(Request("POST", "v3/images/fill-async", op=f"fill[{step.id}]", json=body,
                                                          billed_step=step.id))
        job = response.json()
        if not job.get("jobId") or not job.get("statusUrl"):
            raise EditError(f"firefly fill[{step.id}]: response has no jobId / statusUrl", retryable=True,
                            code="bad_response")
        return {"id": job["jobId"], "status_url": job["statusUrl"], "cancel_url": job.get("cancelUrl"),
                "step": step.id, "mask_default": step.mask is None}

    @staticmethod
    def status_from(body: dict[str, Any]) -> JobStatus:
        """One status answer as pending / ready / failed (retryable or final), per Adobe's states and codes."""
        raw = body.get("status")
        state = str(raw or "").lower()
        if state in PENDING_STATES:
            return JobStatus("pending")
        if state == "succeeded":
            outputs = (body.get("result") or {}).get("outputs") or [{}]
            url = (outputs[0].get("image") or {}).get("url")
            if not url:
                return JobStatus("failed", code="bad_response", retryable=True,
                                 message="firefly: job succeeded without result.outputs[0].image.url")
            return JobStatus("ready", result={"url": url})
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = str(body.get("error_code") or error.get("code") or "")
        message = str(body.get("message") or error.get("message") or state)
        if state == "failed":
            code = code or "job_failed"
            kind = "" if code in RETRYABLE_CODES | FINAL_CODES else " (an undocumented code: final)"
            return JobStatus("failed", code=code, message=f"firefly: {message}{kind}",
                             retryable=code in RETRYABLE_CODES)
        if state == "timeout":  # the job ran out of time at Adobe: nothing produced, a new job may finish
            return JobStatus("failed", code=code or "timeout", message=f"firefly: job timed out: {message}",
                             retryable=True)
        if state in CANCELED_STATES:  # someone cancelled it: not resubmitted behind their back
            return JobStatus("failed", code="job_canceled", message=f"firefly: job was canceled: {message}")
        return JobStatus("failed", code="unknown_status", message=f"firefly: unknown job status {raw!r} "
                         f"(documented: pending, running, succeeded, failed, canceled, cancel_pending, timeout)")

    def poll_request(self, job: dict[str, Any]) -> Request:
        return Request("GET", job["status_url"], op="status")

    def _poll_until_done(self, job: dict[str, Any]) -> Generator[Any, Any, JobStatus]:
        request = yield from self._authed(self.poll_request(job))
        return (yield from poll_plan(request, self.status_from, self.transport.settings, f"firefly job {job['id']}"))

    def collect_plan(self, job: dict[str, Any], status: JobStatus) -> Generator[Any, Any, tuple[bytes, dict]]:
        if status.state != "ready":
            raise EditError(f"firefly job {job['id']}: {status.message}", retryable=status.retryable, code=status.code)
        response = yield Request("GET", status.result["url"], op="download", auth=False)
        return response.content, {"step": job["step"], "provider": "firefly", "model": self.model, "images": 1,
                                  "job_id": job["id"]}

    # -- the whole recipe --------------------------------------------------------------------------
    def plan(self, source: bytes, recipe: Recipe, context: ImageContext) -> Generator[Any, Any, EditResult]:
        check_prompts(recipe, self)
        image, usage, steps = source, [], []
        for step in recipe.steps:
            job = yield from self.submit_plan(step, image, context)
            status = yield from self._poll_until_done(job)
            image, record = yield from self.collect_plan(job, status)
            usage.append(record)
            steps.append({"id": step.id, "model": self.model, "job_id": job["id"],
                          **({"mask": "background"} if job["mask_default"] else {})})
        return final_result(image, recipe, usage, steps)

    # -- the job interface (deferrable operator + trigger) --------------------------------------------
    async def asubmit(self, image: bytes, recipe: Recipe, step_index: int, context: ImageContext) -> dict:
        check_prompts(recipe, self)
        return await self.transport.arun(self.submit_plan(recipe.steps[step_index], image, context))

    async def apoll(self, job: dict) -> JobStatus:
        return self.status_from((await self.transport.arun(self._send(self.poll_request(job)))).json())

    async def acollect(self, job: dict, status: JobStatus) -> tuple[bytes, dict[str, Any]]:
        return await self.transport.arun(self.collect_plan(job, status))

    async def acancel(self, job: dict) -> bool:
        """Ask Firefly to cancel; ``False`` when there is nothing to cancel (already ended: 409, unknown: 404)."""
        if not job.get("cancel_url"):
            return False
        try:
            await self.transport.arun(self._send(Request("PUT", job["cancel_url"], op="cancel",
                                                         final_statuses=CANCEL_ENDED)))
        except EditError as exc:
            if exc.status in CANCEL_ENDED:
                return False
            raise
        return True
