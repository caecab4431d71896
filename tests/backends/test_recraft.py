"""The recraft backend against a loopback server speaking Recraft's REST contract (inpaint, imageToImage)."""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.backends.base import EditError, ImageContext
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.tooling.service.server import LoopbackServer
from tests.fixtures.service import product_png

KEY = "recraft-key-8"
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}


class Recraft:
    def __init__(self):
        self.served, self.forms, self.fates = Counter(), [], []

    def app(self):
        async def edit(request: Request):
            self.served[request.url.path] += 1
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return JSONResponse({"code": "unauthorized", "message": "invalid token"}, status_code=401)
            fate = self.fates.pop(0) if self.fates else "ok"
            if fate == "busy":
                return JSONResponse({"code": "too_many_requests", "message": "rate limited"}, status_code=429,
                                    headers={"retry-after": "0"})
            if fate == "bad":
                return JSONResponse({"code": "invalid_image", "message": "image sides must be >= 256"},
                                    status_code=400)
            async with request.form() as form:
                self.forms.append({k: (v if isinstance(v, str) else (v.content_type, v.size))
                                   for k, v in form.multi_items()})
                if len(str(form.get("prompt") or "").encode()) > 1000:  # as the API reference states
                    return JSONResponse({"code": "invalid_prompt", "message": "prompt is longer than 1000 bytes"},
                                        status_code=400)
                image = await form["image"].read()
            item = {"b64_json": base64.b64encode(image).decode()} if fate == "ok" else \
                {"url": f"{str(request.base_url).rstrip('/')}/files/out.png"}
            self.last = image
            return JSONResponse({"created": 1, "credits": 40, "data": [item]})

        async def download(request: Request):
            assert "authorization" not in request.headers
            return Response(self.last, media_type="image/png")

        return Starlette(routes=[Route("/v1/images/inpaint", edit, methods=["POST"]),
                                 Route("/v1/images/imageToImage", edit, methods=["POST"]),
                                 Route("/files/out.png", download, methods=["GET"])])


@pytest.fixture
def recraft(monkeypatch):
    fake = Recraft()
    with LoopbackServer(fake.app()) as server:
        conn = {"conn_type": "image_edit", "host": server.url, "password": KEY,
                "extra": {"backend": "recraft", "strength": 0.3, **FAST}}
        monkeypatch.setenv("AIRFLOW_CONN_RECRAFT_EDITS", json.dumps(conn))
        yield fake, ImageEditHook("recraft_edits").get_backend()


def recipe(tmp_path):
    return parse_recipe({"name": "t", "output": {"format": "png"}, "steps": [
        {"id": "look", "prompt": "Apply a warm golden look.", "local": {"op": "look", "params": {"name": "warm"}}},
        {"id": "bg", "prompt": "Pure white background.", "mask": "background",
         "local": {"op": "white_background", "params": {}}}]}, origin=(tmp_path / "r.yaml").as_uri())


def ctx(tmp_path):
    return ImageContext("p", tmp_path.as_uri(), tmp_path.as_uri())


def test_image_to_image_then_inpaint(recraft, tmp_path):
    fake, backend = recraft
    fake.fates[:] = ["ok", "url"]
    result = backend.edit(product_png(), recipe(tmp_path), ctx(tmp_path))
    assert result.data[:4] == b"\x89PNG"
    assert [u["credits"] for u in result.usage] == [40, 40] and result.usage[0]["provider"] == "recraft"
    first, second = fake.forms
    assert first["strength"] == "0.3" and first["model"] == "recraftv3" and first["response_format"] == "b64_json"
    assert "mask" not in first and second["mask"][0] == "image/png" and second["prompt"] == "Pure white background."
    assert fake.served == {"/v1/images/imageToImage": 1, "/v1/images/inpaint": 1}


def test_retryable_then_final_error(recraft, tmp_path):
    fake, backend = recraft
    fake.fates[:] = ["busy", "bad"]
    with pytest.raises(EditError) as info:
        backend.edit(product_png(), recipe(tmp_path), ctx(tmp_path))
    assert info.value.code == "invalid_image" and not info.value.retryable and info.value.attempts == 2
    assert KEY not in str(info.value) and KEY not in repr(backend)


def _with_prompt(tmp_path, prompt: str):
    return parse_recipe({"name": "t", "output": {"format": "png"}, "steps": [
        {"id": "look", "prompt": "Apply a warm golden look.", "local": {"op": "look", "params": {"name": "warm"}}},
        {"id": "bg", "prompt": prompt, "mask": "background", "local": {"op": "white_background", "params": {}}}]},
        origin=(tmp_path / "r.yaml").as_uri())


def test_a_prompt_over_1000_bytes_is_refused_before_the_first_step_is_paid(recraft, tmp_path):
    fake, backend = recraft
    wide = "\u00e9" * 501  # 501 characters, 1,002 bytes in UTF-8: Recraft counts bytes
    with pytest.raises(EditError, match=r"step 'bg' field 'prompt' has 1,002 bytes; recraft accepts at most 1,000"
                       ) as info:
        backend.edit(product_png(), _with_prompt(tmp_path, wide), ctx(tmp_path))
    assert info.value.code == "prompt_too_long" and not info.value.retryable
    assert sum(fake.served.values()) == 0  # not even the first step, which the API would have billed
    assert backend.edit(product_png(), _with_prompt(tmp_path, "\u00e9" * 500), ctx(tmp_path)).data  # 1,000 bytes


def test_the_loopback_refuses_what_recraft_refuses(recraft):
    """The pre-send check is only worth something if the server it stands in for would refuse the prompt."""
    import httpx

    fake, backend = recraft
    response = httpx.post(f"{backend.transport.settings.base_url}/v1/images/imageToImage",
                          headers={"Authorization": f"Bearer {KEY}"}, data={"prompt": "x" * 1001},
                          files={"image": ("i.png", product_png(), "image/png")})
    assert response.status_code == 400 and response.json()["code"] == "invalid_prompt"
