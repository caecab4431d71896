"""OpenAI Images edits (``POST /images/edits``): gpt-image-2 / -1.5 / -1 / -1-mini, Azure, any compatible URL.

Each recipe step is one edit request: multipart with the current image and the
step's reference images as repeated ``image[]`` parts, an optional ``mask`` (RGBA
PNG, alpha 0 = edit here, converted from the recipe's black/white mask and checked
against the first image's size), ``prompt``, ``model``, ``n``, ``size``,
``quality``, ``background``, ``output_format``, ``output_compression``,
``input_fidelity`` (never sent to gpt-image-2) and ``user``. The response's
``data[0].b64_json`` feeds the next step; ``usage`` becomes a token usage record.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator
from typing import Any

from airflow_image_catalog.backends.base import Capabilities, EditError, EditResult, ImageContext
from airflow_image_catalog.backends.http import HttpTransport, PlanDriven, Request
from airflow_image_catalog.backends.imaging import alpha_mask_png, conform, edit_region, provider_image
from airflow_image_catalog.recipes import OutputSpec, Recipe, RecipeStep

DEFAULT_MODEL = "gpt-image-2"
FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536")
GPT_IMAGE_2_MAX = (3840, 3840 * 2160)  # longest side, pixels


def _flexible(model: str) -> bool:
    return model.startswith("gpt-image-2")


def validate_size(model: str, size: str) -> str:
    """Check an explicit ``size`` before sending: fixed sizes, or gpt-image-2's custom WxH rules."""
    if size == "auto" or size in FIXED_SIZES:
        return size
    problem = f"size {size!r} is not valid for {model}: "
    if not _flexible(model):
        raise EditError(problem + f"use one of {', '.join(FIXED_SIZES)} or auto", code="invalid_size")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise EditError(problem + "expected WxH", code="invalid_size") from None
    long, short = max(width, height), min(width, height)
    if width % 16 or height % 16:
        raise EditError(problem + "both sides must be multiples of 16", code="invalid_size")
    if short <= 0 or long > 3 * short:
        raise EditError(problem + "aspect ratio must be within 1:3 and 3:1", code="invalid_size")
    if long > GPT_IMAGE_2_MAX[0] or width * height > GPT_IMAGE_2_MAX[1]:
        raise EditError(problem + "at most 3840x2160", code="invalid_size")
    return size


def nearest_size(model: str, width: int, height: int) -> str:
    """The valid request size closest to a wanted output size (the result is fitted locally after)."""
    if not _flexible(model):
        ratio = width / height
        return "1024x1024" if 0.8 <= ratio <= 1.25 else ("1536x1024" if ratio > 1 else "1024x1536")
    ratio = min(max(width / height, 1 / 3), 3)
    scale = min(1.0, GPT_IMAGE_2_MAX[0] / max(width, height), (GPT_IMAGE_2_MAX[1] / (width * height)) ** 0.5)
    w = max(16, int(width * scale) // 16 * 16)
    h = max(16, int(min(w / ratio, height * scale)) // 16 * 16)
    return validate_size(model, f"{w}x{h}")


class OpenAIImagesBackend(PlanDriven):
    """The OpenAI Images edits backend (sync ``edit`` and async ``aedit``).

    :param transport: the shared :class:`~airflow_image_catalog.backends.http.HttpTransport`.
    :param model: any model string; ``gpt-image-2`` by default.
    :param size: an explicit request size for every step (validated); by default the
        recipe's output size (nearest valid size, fitted locally) or ``auto``.
    :param quality: ``low`` / ``medium`` / ``high`` / ``auto``.
    :param background: ``transparent`` / ``opaque`` / ``auto`` (not sent when None).
    :param input_fidelity: ``high`` / ``low``; ignored for gpt-image-2 (always high).
    :param n: images per request (the first is used).
    :param user: end-user id for abuse monitoring.
    """

    name = "openai"
    capabilities = Capabilities(concurrent=True)
    IDENTITY_FIELDS = ("size", "quality", "background", "input_fidelity", "n")  # settings that change the output (cache key)

    def __init__(
        self,
        transport: HttpTransport,
        *,
        model: str = DEFAULT_MODEL,
        size: str | None = None,
        quality: str = "auto",
        background: str | None = None,
        input_fidelity: str | None = None,
        n: int = 1,
        user: str | None = None,
    ):
        self.transport = transport
        self.model = model or DEFAULT_MODEL
        self.size = validate_size(self.model, size) if size else None
        self.quality = quality
        self.background = background
        self.input_fidelity = input_fidelity
        self.n = n
        self.user = user

    def __repr__(self) -> str:
        return f"OpenAIImagesBackend(model={self.model!r}, transport={self.transport!r})"

    def _size_for(self, output: OutputSpec | None) -> str:
        if self.size:
            return self.size
        if output is None or not output.size:
            return "auto"
        width, height = (int(v) for v in output.size.split("x"))
        return nearest_size(self.model, width, height)

    def form(self, step: RecipeStep, output: OutputSpec, size: str) -> dict[str, Any]:
        """The non-file fields of one edit request."""
        data: dict[str, Any] = {"prompt": step.prompt, "model": self.model, "n": str(self.n), "size": size,
                                "quality": self.quality, "output_format": output.format}
        if output.format in ("jpeg", "webp"):
            data["output_compression"] = str(output.quality)
        background = self.background or (output.background if output.background != "auto" else None)
        if background:  # the connection's setting, else what the recipe's output asks for
            data["background"] = background
        if self.input_fidelity and not _flexible(self.model):
            data["input_fidelity"] = self.input_fidelity
        if self.user:
            data["user"] = self.user
        return data

    @staticmethod
    def step_inputs(step: RecipeStep, image: bytes, context: ImageContext) -> tuple[list[bytes], bytes | None]:
        """The step's input images (the image, then its references) and its mask as OpenAI wants it."""
        region = edit_region(step, image, context)
        return [image, *context.references(step)], (alpha_mask_png(region) if region is not None else None)

    def step_request(self, step: RecipeStep, image: bytes, context: ImageContext, output: OutputSpec,
                     size: str) -> Request:
        images, mask = self.step_inputs(step, image, context)
        files = [("image[]", ("image.png", images[0], "image/png"))]
        files += [("image[]", (f"reference-{i}", ref, "application/octet-stream"))
                  for i, ref in enumerate(images[1:], 1)]
        if mask is not None:
            files.append(("mask", ("mask.png", mask, "image/png")))
        return Request("POST", "images/edits", op=f"images.edit[{step.id}]",
                       data=self.form(step, output, size), files=files)

    def step_setup(self, recipe: Recipe, index: int) -> tuple[RecipeStep, OutputSpec, str]:
        """A step, the output it asks for (png between steps) and the request size."""
        step = recipe.steps[index]
        final = index == len(recipe.steps) - 1
        output = recipe.step_output(step) if final or step.output else OutputSpec(format="png")
        return step, output, self._size_for(output if (final or step.output) else None)

    def parse(self, step_id: str, body: Any, *, batch: bool = False) -> tuple[bytes, dict[str, Any]]:
        try:
            image = base64.b64decode(body["data"][0]["b64_json"], validate=True)
        except (KeyError, IndexError, TypeError, binascii.Error, ValueError):
            raise EditError(f"openai images.edit[{step_id}]: response has no valid base64 data[0].b64_json",
                            retryable=True, code="bad_response") from None
        provider_image(image, f"openai images.edit[{step_id}]")
        return image, self.usage_record(step_id, body.get("usage") or {}, batch=batch)

    def usage_record(self, step_id: str, usage: dict[str, Any], *, batch: bool) -> dict[str, Any]:
        details = usage.get("input_tokens_details") or {}
        return {
            "step": step_id, "provider": "openai", "model": self.model, "images": self.n, "batch": batch,
            "input_tokens": usage.get("input_tokens"), "input_image_tokens": details.get("image_tokens"),
            "input_text_tokens": details.get("text_tokens"), "output_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }

    def plan(self, source: bytes, recipe: Recipe, context: ImageContext) -> Generator[Request, Any, EditResult]:
        usage: list[dict[str, Any]] = []
        try:
            return (yield from self._plan(source, recipe, context, usage))
        except EditError as exc:  # earlier steps were paid: their usage goes with the failure, to be booked
            exc.usage = usage + exc.usage
            raise

    def _plan(self, source: bytes, recipe: Recipe, context: ImageContext,
              usage: list[dict[str, Any]]) -> Generator[Request, Any, EditResult]:
        image, steps = source, []
        for index in range(len(recipe.steps)):
            step, output, size = self.step_setup(recipe, index)
            response = yield self.step_request(step, image, context, output, size)
            image, record = self.parse(step.id, response.json())
            if response.headers.get("x-request-id"):  # tells a second bill from a replay in the ledger
                record["request_id"] = response.headers["x-request-id"]
            usage.append(record)
            steps.append({"id": step.id, "model": self.model, "size": size})
        data, width, height = conform(image, recipe.step_output(recipe.steps[-1]))
        return EditResult(data, recipe.step_output(recipe.steps[-1]).format, width, height, usage=usage, steps=steps)
