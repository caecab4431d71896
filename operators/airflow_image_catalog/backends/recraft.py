"""Recraft image editing (synchronous REST, ``Authorization: Bearer``).

Per recipe step: with a mask, ``POST {base}/v1/images/inpaint`` (multipart ``image``,
``mask``: grayscale PNG, white = regenerate, same size as the image, ``prompt``, ``model``,
``n``, ``response_format``); without one, ``POST {base}/v1/images/imageToImage`` (``image``,
``prompt``, ``strength``, ``model``, ``n``, ``response_format``). Responses:
``{"data": [{"b64_json"} | {"url"}], "credits"}``; a ``url`` is downloaded at once without
the key (files are kept about 24 h). Errors: ``{"code", "message"}``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator
from typing import Any

from airflow_image_catalog.backends.base import (
    Capabilities,
    EditError,
    EditResult,
    ImageContext,
    PromptLimit,
    check_prompts,
)
from airflow_image_catalog.backends.http import HttpTransport, PlanDriven, Request
from airflow_image_catalog.backends.imaging import edit_region, final_result, white_mask_png
from airflow_image_catalog.recipes import Recipe, RecipeStep

DEFAULT_MODEL = "recraftv3"


class RecraftBackend(PlanDriven):
    """Recraft inpaint / image-to-image (sync ``edit`` and async ``aedit``).

    :param transport: :class:`~airflow_image_catalog.backends.http.HttpTransport` (bearer auth).
    :param model: ``recraftv3`` (default) or any model string the endpoints accept.
    :param strength: image-to-image strength, 0 (keep) .. 1 (replace); default 0.5.
    :param style: a Recraft style (e.g. ``realistic_image``); not sent when None.
    """

    name = "recraft"
    # the API reference: "a prompt of at most 1000 bytes"
    capabilities = Capabilities(concurrent=True, prompt_limit=PromptLimit(1000, "bytes"))
    IDENTITY_FIELDS = ("strength", "style")  # settings that change the output (cache key)

    def __init__(self, transport: HttpTransport, *, model: str = DEFAULT_MODEL, strength: float = 0.5,
                 style: str | None = None):
        self.transport = transport
        self.model = model or DEFAULT_MODEL
        self.strength = float(strength)
        self.style = style

    def __repr__(self) -> str:
        return f"RecraftBackend(model={self.model!r}, transport={self.transport!r})"

    def step_request(self, step: RecipeStep, image: bytes, context: ImageContext) -> Request:
        data: dict[str, Any] = {"prompt": step.prompt, "model": self.model, "n": "1", "response_format": "b64_json"}
        if self.style:
            data["style"] = self.style
        files = [("image", ("image.png", image, "image/png"))]
        region = edit_region(step, image, context)
        if region is None:
            data["strength"] = str(self.strength)
            return Request("POST", "v1/images/imageToImage", op=f"imageToImage[{step.id}]", data=data, files=files,
                           billed_step=step.id)
        files.append(("mask", ("mask.png", white_mask_png(region), "image/png")))
        return Request("POST", "v1/images/inpaint", op=f"inpaint[{step.id}]", data=data, files=files,
                       billed_step=step.id)

    def result_plan(self, step: RecipeStep, body: dict[str, Any]) -> Generator[Any, Any, bytes]:
        item = (body.get("data") or [{}])[0]
        if item.get("b64_json"):
            try:
                return base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                pass
        elif item.get("url"):
            return (yield Request("GET", item["url"], op=f"download[{step.id}]", auth=False)).content
        raise EditError(f"recraft {step.id}: response has no data[0].b64_json / url", retryable=True,
                        code="bad_response")

    def plan(self, source: bytes, recipe: Recipe, context: ImageContext) -> Generator[Any, Any, EditResult]:
        check_prompts(recipe, self)
        image, usage, steps = source, [], []
        for step in recipe.steps:
            request = self.step_request(step, image, context)
            body = (yield request).json()
            image = yield from self.result_plan(step, body)
            usage.append({"step": step.id, "provider": "recraft", "model": self.model, "images": 1,
                          "credits": body.get("credits")})
            steps.append({"id": step.id, "model": self.model, "endpoint": request.url.rsplit("/", 1)[-1]})
        return final_result(image, recipe, usage, steps)
