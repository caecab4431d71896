from __future__ import annotations

import base64

import httpx
import pytest

from tests.fixtures.service import edit_service, product_png, service  # noqa: F401  (fixtures)

PROMPT = "Apply a warm golden look."


@pytest.fixture
def edit(service):  # noqa: F811  (the fixture imported above)
    """POST one images/edits request over loopback: ``edit(key=..., prompt=..., image=..., timeout=...)``."""

    def post(*, key: str | None = None, prompt: str = PROMPT, image: bytes | None = None, timeout: float = 30.0,
             headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {**({"Idempotency-Key": key} if key else {}), **(headers or {})}
        files = [("image[]", ("p.png", image or product_png(), "image/png"))]
        return httpx.post(f"{service.openai_base_url}/images/edits", data={"prompt": prompt, "model": "gpt-image-2"},
                          files=files, headers=sent, timeout=timeout)

    return post


@pytest.fixture
def bfl_submit(service):  # noqa: F811
    """POST one BFL submit over loopback: ``bfl_submit(key=..., prompt=..., image=...)``."""

    def post(*, key: str | None = None, prompt: str = PROMPT, image: bytes | None = None,
             model: str = "flux-kontext-pro") -> httpx.Response:
        headers = {"x-key": "bfl-key", **({"Idempotency-Key": key} if key else {})}
        body = {"prompt": prompt, "input_image": base64.b64encode(image or product_png()).decode(),
                "output_format": "png"}
        return httpx.post(f"{service.url}/v1/{model}", json=body, headers=headers, timeout=30)

    return post
