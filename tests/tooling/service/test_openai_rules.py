"""The local edit service refuses what the OpenAI images/edits API refuses, case by case.

Each case is one request the real API answers with an error (per the SDK's parameter notes, Azure's
image how-to and the reported API answers cited in ``tooling/service/openai_rules.py``), sent
over HTTP as a client would, with the expected status, error code and field written out here.
Nothing refused is performed (billed). The backend's pre-flight checks and the service's rules
are two readings of the same documents; the last tests hold them to each other.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from airflow_image_catalog.backends.base import EditError
from airflow_image_catalog.backends.openai_images import nearest_size, validate_size
from airflow_image_catalog.tooling.service.openai_rules import MODELS, check_size
from airflow_image_catalog.tooling.service.protocol import BadRequest
from tests.fixtures.service import product_png, wait_until


def _encoded(fmt: str, size=(96, 96), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(product_png())).convert(mode).resize(size).save(buf, fmt)
    return buf.getvalue()


def _mask(size=(96, 96), alpha=True) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", size, (0, 0, 0, 0) if alpha else (0, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


PNG = ("image.png", product_png(), "image/png")
BASE = {"prompt": "Put the product on a pure white background.", "model": "gpt-image-2"}

#: (id, fields to change, file parts, expected status, code, param)
REFUSED = [
    ("octet-stream image", {}, [("image", ("image", product_png(), "application/octet-stream"))],
     400, "unsupported_file_mimetype", "image"),
    ("octet-stream reference", {}, [("image[]", PNG), ("image[]", ("reference-1", product_png(),
                                                                     "application/octet-stream"))],
     400, "unsupported_file_mimetype", "image[]"),
    ("jpeg bytes sent as png", {}, [("image", ("image.png", _encoded("JPEG"), "image/png"))],
     400, "invalid_image_format", "image"),
    ("not an image", {}, [("image", ("image.png", b"<html>nope</html>", "image/png"))], 400, "invalid_image", "image"),
    ("gif input", {}, [("image", ("image.gif", _encoded("GIF"), "image/gif"))], 400, "unsupported_file_mimetype",
     "image"),
    ("no image", {}, [], 400, "missing_required_parameter", "image"),
    ("17 images", {}, [("image[]", PNG)] * 17, 400, "invalid_value", "image"),
    ("empty prompt", {"prompt": " "}, [("image", PNG)], 400, "missing_required_parameter", "prompt"),
    ("prompt of 32,001 characters", {"prompt": "x" * 32_001}, [("image", PNG)], 400, "string_above_max_length",
     "prompt"),
    ("gpt-image-2 512x512 (under 655,360 px)", {"size": "512x512"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-2 800x800 (640,000 px)", {"size": "800x800"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-2 1000x1008 (not /16)", {"size": "1000x1008"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-2 3072x1008 (ratio over 3:1)", {"size": "3072x1008"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-2 3856x2160 (edge over 3840)", {"size": "3856x2160"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-2 3840x2176 (over 8,294,400 px)", {"size": "3840x2176"}, [("image", PNG)], 400, "invalid_value",
     "size"),
    ("gpt-image-2 size not WxH", {"size": "big"}, [("image", PNG)], 400, "invalid_value", "size"),
    ("gpt-image-1.5 custom size", {"model": "gpt-image-1.5", "size": "1200x800"}, [("image", PNG)], 400,
     "invalid_value", "size"),
    ("input_fidelity on gpt-image-2", {"input_fidelity": "high"}, [("image", PNG)], 400, "unsupported_parameter",
     "input_fidelity"),
    ("high fidelity on gpt-image-1-mini", {"model": "gpt-image-1-mini", "input_fidelity": "high"}, [("image", PNG)],
     400, "invalid_value", "input_fidelity"),
    ("fidelity 'max' on gpt-image-1.5", {"model": "gpt-image-1.5", "input_fidelity": "max"}, [("image", PNG)],
     400, "invalid_value", "input_fidelity"),
    ("n=0", {"n": "0"}, [("image", PNG)], 400, "integer_below_min_value", "n"),
    ("n=11", {"n": "11"}, [("image", PNG)], 400, "integer_above_max_value", "n"),
    ("n not a number", {"n": "two"}, [("image", PNG)], 400, "invalid_type", "n"),
    ("quality ultra", {"quality": "ultra"}, [("image", PNG)], 400, "invalid_value", "quality"),
    ("output_format gif", {"output_format": "gif"}, [("image", PNG)], 400, "invalid_value", "output_format"),
    ("background clear", {"background": "clear"}, [("image", PNG)], 400, "invalid_value", "background"),
    ("transparent jpeg", {"background": "transparent", "output_format": "jpeg"}, [("image", PNG)], 400,
     "invalid_value", "background"),
    ("compression with png", {"output_compression": "80"}, [("image", PNG)], 400, "invalid_value",
     "output_compression"),
    ("compression 101", {"output_format": "jpeg", "output_compression": "101"}, [("image", PNG)], 400,
     "integer_above_max_value", "output_compression"),
    ("jpeg mask", {}, [("image", PNG), ("mask", ("mask.jpg", _encoded("JPEG"), "image/jpeg"))], 400,
     "unsupported_file_mimetype", "mask"),
    ("mask without alpha", {}, [("image", PNG), ("mask", ("mask.png", _mask(alpha=False), "image/png"))], 400,
     "invalid_value", "mask"),
    ("mask of another size", {}, [("image", PNG), ("mask", ("mask.png", _mask((64, 64)), "image/png"))], 400,
     "invalid_value", "mask"),
    ("mask over 4 MB", {}, [("image", PNG), ("mask", ("mask.png", _mask() + b"\0" * (4 * 1024 * 1024), "image/png"))],
     400, "invalid_value", "mask"),
    ("gpt-image-1 (shut down 2026-10-23)", {"model": "gpt-image-1"}, [("image", PNG)], 404, "model_not_found", "model"),
    ("gpt-image-1 snapshot", {"model": "gpt-image-1-2025-04-23"}, [("image", PNG)], 404, "model_not_found", "model"),
    ("dall-e-2 (retired)", {"model": "dall-e-2"}, [("image", PNG)], 404, "model_not_found", "model"),
    ("dall-e-3 (retired)", {"model": "dall-e-3"}, [("image", PNG)], 404, "model_not_found", "model"),
    ("an unknown model", {"model": "gpt-image-9"}, [("image", PNG)], 404, "model_not_found", "model"),
]

ACCEPTED = [
    ("gpt-image-2 auto", {}, [("image", PNG)]),
    ("gpt-image-2 1536x864 (the SDK's example)", {"size": "1536x864"}, [("image", PNG)]),
    ("gpt-image-2 816x816 (665,856 px)", {"size": "816x816"}, [("image", PNG)]),
    ("gpt-image-2 3024x1008 (exactly 3:1)", {"size": "3024x1008"}, [("image", PNG)]),
    ("gpt-image-2 3840x2160", {"size": "3840x2160", "quality": "low"}, [("image", PNG)]),
    ("gpt-image-2 snapshot", {"model": "gpt-image-2-2026-04-21"}, [("image", PNG)]),
    ("gpt-image-1.5 high fidelity, webp + jpeg references",
     {"model": "gpt-image-1.5", "size": "1024x1536", "input_fidelity": "high"},
     [("image[]", ("image.webp", _encoded("WEBP"), "image/webp")),
      ("image[]", ("reference-1.jpg", _encoded("JPEG"), "image/jpeg"))]),
    ("gpt-image-1-mini low fidelity", {"model": "gpt-image-1-mini", "input_fidelity": "low"}, [("image", PNG)]),
    ("jpeg output with compression and a mask", {"output_format": "jpeg", "output_compression": "60", "n": "2"},
     [("image", PNG), ("mask", ("mask.png", _mask(), "image/png"))]),
    ("transparent webp", {"background": "transparent", "output_format": "webp"}, [("image", PNG)]),
]


@pytest.mark.parametrize(("fields", "files", "status", "code", "param"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_the_service_refuses_what_the_api_refuses(service, fields, files, status, code, param):
    response = httpx.post(f"{service.openai_base_url}/images/edits", data={**BASE, **fields}, files=files or None,
                          timeout=30)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (status, code, param), error["message"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert service.state.performed == []  # a refused request is never edited, never billed


@pytest.mark.parametrize(("fields", "files"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_the_service_accepts_what_the_api_accepts(service, fields, files):
    response = httpx.post(f"{service.openai_base_url}/images/edits", data={**BASE, **fields}, files=files, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == int(fields.get("n", 1)) and body["usage"]["output_tokens"] > 0
    assert len(service.state.performed) == 1


def test_an_image_over_50_mb_is_refused():
    """[O1]: each image under 50 MB (checked on the part itself: a 50 MB upload over loopback is not worth it)."""
    from airflow_image_catalog.tooling.service.openai_rules import MAX_IMAGE_BYTES, Part, check_image

    assert check_image(Part("image", "image/png", product_png())) > (0, 0)
    with pytest.raises(BadRequest) as info:
        check_image(Part("image", "image/png", product_png() + b"\0" * MAX_IMAGE_BYTES))
    assert (info.value.code, info.value.param) == ("invalid_value", "image") and "50 MB" in str(info.value)


def test_azure_deployments_need_an_api_version(service):
    url = f"{service.url}/openai/deployments/gpt-image-2/images/edits"
    assert httpx.post(url, data=BASE, files=[("image", PNG)]).status_code == 404
    assert httpx.post(url, params={"api-version": "2025-04-01-preview"}, data=BASE,
                      files=[("image", PNG)]).status_code == 200


def test_a_batch_line_is_held_to_the_same_rules(service):
    def line(custom_id, body):
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/images/edits", "body": body}

    ok = {"image_url": "data:image/png;base64," + base64.b64encode(product_png()).decode()}
    octet = {"image_url": "data:application/octet-stream;base64," + base64.b64encode(product_png()).decode()}
    lines = [line("ok", {**BASE, "images": [ok]}), line("octet", {**BASE, "images": [octet]}),
             line("small", {**BASE, "images": [ok], "size": "512x512"})]
    url = service.openai_base_url
    jsonl = "".join(json.dumps(item) + "\n" for item in lines).encode()
    uploaded = httpx.post(f"{url}/files", data={"purpose": "batch"},
                          files=[("file", ("lines.jsonl", jsonl, "application/octet-stream"))]).json()
    batch = httpx.post(f"{url}/batches", json={"input_file_id": uploaded["id"], "endpoint": "/v1/images/edits",
                                               "completion_window": "24h"}).json()
    wait_until(lambda: httpx.get(f"{url}/batches/{batch['id']}").json()["status"] == "completed", timeout=60)
    done = httpx.get(f"{url}/batches/{batch['id']}").json()
    errors = httpx.get(f"{url}/files/{done['error_file_id']}/content").content.decode().splitlines()
    codes = {json.loads(e)["custom_id"]: json.loads(e)["response"]["body"]["error"]["code"] for e in errors}
    assert codes == {"octet": "unsupported_file_mimetype", "small": "invalid_value"}
    assert done["request_counts"] == {"total": 3, "completed": 1, "failed": 2}


# -- the backend's pre-flight checks and the service's rules agree ------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 9000), st.integers(1, 9000))
def test_every_size_the_backend_picks_is_one_the_service_takes(width, height):
    for model in ("gpt-image-2", "gpt-image-1.5"):
        check_size(MODELS[model.removesuffix("-2026-04-21")], nearest_size(model, width, height))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 260).map(lambda v: v * 16 - st_offset(v)), st.integers(1, 260).map(lambda v: v * 16))
def test_the_backend_refuses_before_sending_what_the_service_would_refuse(width, height):
    size = f"{width}x{height}"
    try:
        check_size(MODELS["gpt-image-2"], size)
        refused_by_service = False
    except BadRequest:
        refused_by_service = True
    try:
        validate_size("gpt-image-2", size)
        refused_by_backend = False
    except EditError:
        refused_by_backend = True
    assert refused_by_backend == refused_by_service, size


def st_offset(value: int) -> int:
    """Every seventh width misses the 16-pixel grid, so both readings see sizes they must refuse."""
    return 8 if value % 7 == 0 else 0
