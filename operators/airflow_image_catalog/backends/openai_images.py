"""OpenAI Images edits (``POST /images/edits``): gpt-image-2 / -1.5 / -1-mini, Azure, any compatible URL.

Each recipe step is one edit request, multipart as the official ``openai`` SDK sends it
(``openai/resources/images.py``, ``openai/_files.py``): the current image as the part ``image``
(``image[]`` when the step has reference images, each reference another ``image[]`` part), every
file part named with its real extension and sent with its ``image/*`` content type (the API answers
``application/octet-stream`` parts with 400 ``unsupported_file_mimetype``), an optional ``mask``
(RGBA PNG, alpha 0 = edit here, converted from the recipe's black/white mask and checked against
the first image's size), then ``prompt``, ``model``, ``n``, ``size``, ``quality``, ``background``,
``output_format``, ``output_compression``, ``input_fidelity`` (never sent to gpt-image-2, which
always reads inputs at high fidelity) and ``safety_identifier`` / ``user``. The response's
``data[0].b64_json`` feeds the next step; ``usage`` becomes a token usage record.

The model rules are the SDK's own notes (``ImageEditParamsBase`` in ``openai/types/image_edit_params.py``,
openai-python 3.57) and Azure's image-generation how-to: gpt-image-2 takes any ``WxH`` with sides
divisible by 16, an aspect ratio within 1:3..3:1, a long edge of at most 3840 and 655,360 to
8,294,400 pixels; the other GPT image models take 1024x1024 / 1536x1024 / 1024x1536 / auto;
gpt-image-1-mini takes only low input fidelity; gpt-image-1 was shut down on 2026-10-23 and the
dall-e models were retired on 2026-05-12: a connection naming one is refused before any request.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Generator
from typing import Any

from airflow_image_catalog.backends.base import (
    Capabilities,
    EditError,
    EditResult,
    ImageContext,
    PromptLimit,
    check_prompts,
    prompt_problem,
)
from airflow_image_catalog.backends.http import HttpTransport, PlanDriven, Request
from airflow_image_catalog.backends.imaging import alpha_mask_png, conform, edit_region, provider_image
from airflow_image_catalog.recipes import OutputSpec, Recipe, RecipeStep

DEFAULT_MODEL = "gpt-image-2"
FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536")
#: gpt-image-2's custom sizes (the SDK's ``size`` note; Azure's how-to for the pixel range)
SIZE_STEP = 16
MAX_RATIO = 3
MAX_EDGE = 3840
MIN_PIXELS = 655_360
MAX_PIXELS = 3840 * 2160  # 8,294,400
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
FIDELITIES = ("high", "low")
MAX_IMAGES = 16  # "You can provide up to 16 images"
MAX_N = 10
#: models the API no longer serves: (date, what to use instead); the SDK's ``model`` notes
SHUT_DOWN = {
    "gpt-image-1": ("2026-10-23", "gpt-image-2"),
    "dall-e-2": ("2026-05-12", "gpt-image-2"),
    "dall-e-3": ("2026-05-12", "gpt-image-2"),
}
#: models that take only some ``input_fidelity`` values (the SDK's ``input_fidelity`` note)
FIDELITY_ONLY = {"gpt-image-1-mini": ("low",)}
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _family(model: str) -> str:
    """The model without a dated snapshot suffix (``gpt-image-2-2026-04-21`` -> ``gpt-image-2``)."""
    return _SNAPSHOT.sub("", model)


def _flexible(model: str) -> bool:
    return model.startswith("gpt-image-2")


def check_model(model: str) -> str:
    """``model`` if the API still serves it; a model that was shut down is refused with its date."""
    gone = SHUT_DOWN.get(_family(model))
    if gone:
        raise EditError(f"model {model!r} was shut down on {gone[0]} and is no longer served by OpenAI; "
                        f"use {gone[1]} (set the connection's extra 'model')", code="model_shut_down")
    return model


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
    if width % SIZE_STEP or height % SIZE_STEP or short <= 0:
        raise EditError(problem + f"both sides must be multiples of {SIZE_STEP}", code="invalid_size")
    if long > MAX_RATIO * short:
        raise EditError(problem + "aspect ratio must be within 1:3 and 3:1", code="invalid_size")
    if long > MAX_EDGE:
        raise EditError(problem + f"the long edge must be at most {MAX_EDGE} (at most 3840x2160)",
                        code="invalid_size")
    if not MIN_PIXELS <= width * height <= MAX_PIXELS:
        raise EditError(problem + f"{width * height:,} pixels, must be {MIN_PIXELS:,} to {MAX_PIXELS:,} "
                        "(at most 3840x2160)", code="invalid_size")
    return size


def nearest_size(model: str, width: int, height: int) -> str:
    """The valid request size closest to a wanted output size (the result is fitted locally after).

    gpt-image-2: the wanted aspect ratio (clamped to 3:1), scaled into the pixel range and the
    long-edge limit, each side rounded down or up to a multiple of 16, whichever valid pair keeps
    the ratio (then the area) closest.
    """
    if not _flexible(model):
        ratio = width / height
        return "1024x1024" if 0.8 <= ratio <= 1.25 else ("1536x1024" if ratio > 1 else "1024x1536")
    ratio = min(max(width / height, 1 / MAX_RATIO), MAX_RATIO)
    area = min(max(width * height, MIN_PIXELS), MAX_PIXELS)
    w, h = math.sqrt(area * ratio), math.sqrt(area / ratio)
    shrink = min(1.0, MAX_EDGE / max(w, h))
    w, h = w * shrink, h * shrink
    step = SIZE_STEP
    sides = [(cw, ch) for cw in {math.floor(w / step) * step, math.ceil(w / step) * step}
             for ch in {math.floor(h / step) * step, math.ceil(h / step) * step}]
    valid = [(cw, ch) for cw, ch in sides if min(cw, ch) > 0 and max(cw, ch) <= MAX_EDGE
             and max(cw, ch) <= MAX_RATIO * min(cw, ch) and MIN_PIXELS <= cw * ch <= MAX_PIXELS]
    w, h = min(valid, key=lambda s: (abs(math.log(s[0] / s[1] / ratio)), abs(s[0] * s[1] - area)))
    return validate_size(model, f"{w}x{h}")


def image_part(name: str, stem: str, data: bytes) -> tuple[str, tuple[str, bytes, str]]:
    """A multipart file part as the SDK sends a named file: ``stem.<ext>`` and its image content type."""
    from airflow_image_catalog.imaging.containers import MIME, sniff_format

    fmt = sniff_format(data)
    if fmt is None:
        raise EditError(f"{name}: not a PNG, JPEG or WebP image (the API takes no other format)",
                        code="invalid_image_format")
    return name, (f"{stem}.{'jpg' if fmt == 'jpeg' else fmt}", data, MIME[fmt])


class OpenAIImagesBackend(PlanDriven):
    """The OpenAI Images edits backend (sync ``edit`` and async ``aedit``).

    :param transport: the shared :class:`~airflow_image_catalog.backends.http.HttpTransport`.
    :param model: any model string; ``gpt-image-2`` by default; shut-down models are refused.
    :param size: an explicit request size for every step (validated); by default the
        recipe's output size (nearest valid size, fitted locally) or ``auto``.
    :param quality: ``low`` / ``medium`` / ``high`` / ``auto``.
    :param background: ``transparent`` / ``opaque`` / ``auto`` (not sent when None).
    :param input_fidelity: ``high`` / ``low``; not sent to gpt-image-2 (always high).
    :param n: images per request, 1-10 (the first is used; each is paid for).
    :param safety_identifier: a stable, hashed end-user id for abuse monitoring.
    :param user: the deprecated form of ``safety_identifier`` (sent as given).
    """

    name = "openai"
    # "The maximum length is 32000 characters for the GPT image models"
    capabilities = Capabilities(concurrent=True, prompt_limit=PromptLimit(32_000))
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
        safety_identifier: str | None = None,
        user: str | None = None,
    ):
        self.transport = transport
        self.model = check_model(str(model or DEFAULT_MODEL))
        self.size = validate_size(self.model, size) if size else None
        self.quality = _choice("quality", quality or "auto", QUALITIES)
        self.background = _choice("background", background, BACKGROUNDS) if background else None
        self.input_fidelity = _choice("input_fidelity", input_fidelity, FIDELITIES) if input_fidelity else None
        allowed = FIDELITY_ONLY.get(_family(self.model))
        if self.input_fidelity and allowed and self.input_fidelity not in allowed:
            raise EditError(f"input_fidelity {self.input_fidelity!r} is not supported by {self.model} "
                            f"(it takes only {', '.join(allowed)})", code="invalid_input_fidelity")
        try:
            self.n = int(n)
        except (TypeError, ValueError):
            raise EditError(f"n must be an integer 1-{MAX_N}, got {n!r}", code="invalid_n") from None
        if not 1 <= self.n <= MAX_N:
            raise EditError(f"n must be between 1 and {MAX_N}, got {self.n}", code="invalid_n")
        self.safety_identifier = safety_identifier
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
        """The non-file fields of one edit request (checked before anything is sent)."""
        if problem := prompt_problem(step, None, self):  # a drift regeneration may merge prompts past the limit
            raise EditError(problem, code="prompt_too_long")
        if self.background == "transparent" and output.format == "jpeg":
            raise EditError(f"step {step.id}: background 'transparent' needs output format png or webp, not jpeg",
                            code="invalid_background")
        data: dict[str, Any] = {"prompt": step.prompt, "model": self.model, "n": str(self.n), "size": size,
                                "quality": self.quality, "output_format": output.format}
        if output.format in ("jpeg", "webp"):
            data["output_compression"] = str(output.quality)
        background = self.background or (output.background if output.background != "auto" else None)
        if background:  # the connection's setting, else what the recipe's output asks for
            data["background"] = background
        if self.input_fidelity and not _flexible(self.model):
            data["input_fidelity"] = self.input_fidelity
        if self.safety_identifier:
            data["safety_identifier"] = self.safety_identifier
        if self.user:
            data["user"] = self.user
        return data

    @staticmethod
    def step_inputs(step: RecipeStep, image: bytes, context: ImageContext) -> tuple[list[bytes], bytes | None]:
        """The step's input images (the image, then its references) and its mask as OpenAI wants it."""
        region = edit_region(step, image, context)
        images = [image, *context.references(step)]
        if len(images) > MAX_IMAGES:
            raise EditError(f"step {step.id}: {len(images)} input images, the API takes at most {MAX_IMAGES}",
                            code="too_many_images")
        return images, (alpha_mask_png(region) if region is not None else None)

    @staticmethod
    def file_parts(images: list[bytes], mask: bytes | None) -> list[tuple[str, tuple[str, bytes, str]]]:
        """The multipart file parts: ``image`` alone, or ``image[]`` per image with references; ``mask``."""
        name = "image[]" if len(images) > 1 else "image"
        files = [image_part(name, "image", images[0])]
        files += [image_part(name, f"reference-{i}", ref) for i, ref in enumerate(images[1:], 1)]
        if mask is not None:
            files.append(image_part("mask", "mask", mask))
        return files

    def step_request(self, step: RecipeStep, image: bytes, context: ImageContext, output: OutputSpec,
                     size: str) -> Request:
        data = self.form(step, output, size)
        images, mask = self.step_inputs(step, image, context)
        return Request("POST", "images/edits", op=f"images.edit[{step.id}]", data=data,
                       files=self.file_parts(images, mask), billed_step=step.id)

    def step_setup(self, recipe: Recipe, index: int) -> tuple[RecipeStep, OutputSpec, str]:
        """A step, the output it asks for (png between steps) and the request size."""
        step = recipe.steps[index]
        final = index == len(recipe.steps) - 1
        output = recipe.step_output(step) if final or step.output else OutputSpec(format="png")
        return step, output, self._size_for(output if (final or step.output) else None)

    def parse(self, step_id: str, body: Any, *, batch: bool = False,
              request_id: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """The image and the usage record of one answer. An answer whose image is broken was still done
        and billed: its usage record goes with the error (``EditError.usage``), to be booked."""
        record = self.usage_record(step_id, (body.get("usage") if isinstance(body, dict) else None) or {},
                                   batch=batch)
        if request_id:  # tells a second bill from a replay in the ledger
            record["request_id"] = request_id
        try:
            image = base64.b64decode(body["data"][0]["b64_json"], validate=True)
        except (KeyError, IndexError, TypeError, binascii.Error, ValueError):
            raise EditError(f"openai images.edit[{step_id}]: response has no valid base64 data[0].b64_json",
                            retryable=True, code="bad_response", usage=[record]) from None
        try:
            provider_image(image, f"openai images.edit[{step_id}]")
        except EditError as exc:
            exc.usage = [record, *exc.usage]
            raise
        return image, record

    def usage_record(self, step_id: str, usage: dict[str, Any], *, batch: bool) -> dict[str, Any]:
        details = usage.get("input_tokens_details") or {}
        return {
            "step": step_id, "provider": "openai", "model": self.model, "images": self.n, "batch": batch,
            "input_tokens": usage.get("input_tokens"), "input_image_tokens": details.get("image_tokens"),
            "input_text_tokens": details.get("text_tokens"), "output_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
        }

    def plan(self, source: bytes, recipe: Recipe, context: ImageContext) -> Generator[Request, Any, EditResult]:
        check_prompts(recipe, self)
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
            image, record = self.parse(step.id, response.json(), request_id=response.headers.get("x-request-id"))
            usage.append(record)
            steps.append({"id": step.id, "model": self.model, "size": size})
        data, width, height = conform(image, recipe.step_output(recipe.steps[-1]))
        return EditResult(data, recipe.step_output(recipe.steps[-1]).format, width, height, usage=usage, steps=steps)


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise EditError(f"{field} must be one of {', '.join(allowed)}, got {value!r}", code=f"invalid_{field}")
    return text
