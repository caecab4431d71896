"""The local BFL contract refuses what BFL's OpenAPI document refuses, case by case, in FastAPI's 422 shape.

The document: api.bfl.ai/openapi.json (docs.bfl.ai/api-reference, mirrored in tryAGI/BlackForestLabs
``src/libs/BlackForestLabs/openapi.json``): ``FluxKontextProInputs`` (both Kontext models) declares
``input_image`` .. ``input_image_4`` and ``safety_tolerance`` 0..6, ``Flux2Inputs`` (FLUX.2 [pro] / [max])
``input_image`` .. ``input_image_8`` and 0..5, ``OutputFormat`` jpeg / png / webp, ``prompt`` required;
every model route answers 422 ``HTTPValidationError`` ``{"detail": [{"loc", "msg", "type"}]}``.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from airflow_image_catalog.tooling.service.bfl import MODELS, SCHEMAS
from tests.fixtures.service import product_png


def _b64(color=(200, 40, 40)) -> str:
    return base64.b64encode(product_png(color=color)).decode()


def _post(service, model, body):
    return httpx.post(f"{service.url}/v1/{model}", json=body, headers={"x-key": "k"}, timeout=30)


@pytest.mark.parametrize(("model", "body", "field", "kind"), [
    ("flux-kontext-pro", {}, "prompt", "missing"),
    ("flux-kontext-pro", {"prompt": 7}, "prompt", "string_type"),
    ("flux-kontext-pro", {"prompt": "Warm it.", "safety_tolerance": 7}, "safety_tolerance", "less_than_equal"),
    ("flux-kontext-max", {"prompt": "Warm it.", "safety_tolerance": -1}, "safety_tolerance", "greater_than_equal"),
    ("flux-2-pro", {"prompt": "Warm it.", "safety_tolerance": 6}, "safety_tolerance", "less_than_equal"),
    ("flux-2-max", {"prompt": "Warm it.", "safety_tolerance": "2x"}, "safety_tolerance", "int_type"),
    ("flux-2-pro", {"prompt": "Warm it.", "output_format": "gif"}, "output_format", "enum"),
])
def test_each_schema_violation_is_refused_in_fastapis_shape(service, model, body, field, kind):
    answer = _post(service, model, {"input_image": _b64(), **body})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", field] and error["type"] == kind and error["msg"]
    assert service.state.performed == []  # refused before any task exists: nothing billed


def test_bounds_the_schema_allows_are_taken(service):
    for model, tolerance in (("flux-kontext-pro", 6), ("flux-2-pro", 5), ("flux-2-max", 0)):
        assert _post(service, model, {"prompt": "Warm it.", "input_image": _b64(),
                                      "safety_tolerance": tolerance}).status_code == 200
    job = _post(service, "flux-2-pro", {"prompt": "Warm it.", "input_image": _b64(), "output_format": "webp"}).json()
    for _ in range(200):  # webp is in BFL's OutputFormat enum: the sample is a WebP
        result = httpx.get(job["polling_url"]).json()
        if result["status"] == "Ready":
            break
        time.sleep(0.02)
    sample = httpx.get(result["result"]["sample"])
    assert sample.headers["content-type"] == "image/webp" and sample.content[8:12] == b"WEBP"


def test_malformed_json_is_refused_as_fastapi_does(service):
    answer = httpx.post(f"{service.url}/v1/flux-2-pro", content=b"{not json", headers={"x-key": "k"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(("model", "read"), [("flux-kontext-pro", 4), ("flux-kontext-max", 4), ("flux-2-pro", 8),
                                             ("flux-2-max", 8)])
def test_input_images_beyond_the_models_schema_are_not_read(service, model, read):
    """The schemas do not set ``additionalProperties: false`` (the outpainting tool's does), so an
    undeclared ``input_image_N`` is ignored as FastAPI ignores extra fields, not refused."""
    body = {"prompt": "Match the references.", "input_image": _b64(),
            **{f"input_image_{n}": _b64((20 * n, 90, 160)) for n in range(2, 11)}}
    answer = _post(service, model, body)
    assert answer.status_code == 200
    assert service.state.jobs[answer.json()["id"]].inputs == read


def test_every_emulated_model_has_its_schema():
    assert set(SCHEMAS) == set(MODELS)


def test_a_fastapi_422_reaches_the_failure_message_field_by_field():
    from airflow_image_catalog.backends.http import error_details

    response = httpx.Response(422, json={"detail": [{"type": "less_than_equal", "loc": ["body", "safety_tolerance"],
                                                     "msg": "Input should be less than or equal to 5", "input": 6}]})
    assert error_details(response) == ("http_422", "safety_tolerance: Input should be less than or equal to 5")


@pytest.mark.parametrize(("model", "usd"), [("flux-2-klein-4b", 0.015), ("flux-2-klein-9b", 0.017),
                                            ("flux-2-pro", 0.045), ("flux-2-max", 0.10), ("flux-2-flex", 0.10),
                                            ("flux-kontext-pro", 0.04), ("flux-kontext-max", 0.08)])
def test_a_1_mp_edit_costs_what_bfl_publishes(service, model, usd):
    """BFL's "1MP I2I" prices (black-forest-labs/skills ``skills/bfl-api/SKILL.md``), from the submit's ``cost``."""
    body = _post(service, model, {"prompt": "Warm it.", "input_image": base64.b64encode(
        product_png(1024, 1024)).decode()}).json()
    assert body["cost"] / 100 == pytest.approx(usd, abs=1e-9)
    if model.startswith("flux-2"):
        assert (body["input_mp"], body["output_mp"]) == (1.0, 1.0)


def test_flux_2_is_billed_by_the_megapixel_inputs_included_and_the_estimate_covers_it(service):
    from airflow_image_catalog.pipeline.costing.pricing import estimate_edit
    from airflow_image_catalog.tooling.service.bfl import cost

    image, reference = product_png(2048, 2048), product_png(1024, 1024)
    body = _post(service, "flux-2-pro", {"prompt": "Match the reference.", "input_image": base64.b64encode(image).decode(),
                                         "input_image_2": base64.b64encode(reference).decode()}).json()
    assert (body["input_mp"], body["output_mp"]) == (5.0, 4.0)
    assert body["cost"] == pytest.approx(3 + 3 * 1.5 + 5 * 1.5)  # first MP, 3 more output MP, 5 input MP
    # BFL's formula counts megapixels to 2 decimals; the estimator rounds each image up to whole ones, so
    # for sizes off the megapixel grid it estimates more, never less (a cap reservation is never short)
    for size in ((1500, 1500), (1024, 1024), (1536, 1024), (2000, 1200), (640, 480)):
        billed, _, _ = cost("flux-2-pro", [size])
        estimated = estimate_edit("bfl", "flux-2-pro", input_sizes=[size], size=f"{size[0]}x{size[1]}").usd * 100
        assert estimated >= billed - 1e-9, size
