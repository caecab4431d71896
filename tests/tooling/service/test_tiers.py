"""The local edit service's EMULATED tiers: stated defect rates, deterministic per image and tier, defects
the real gate catches, and prices that the normal pricing, estimate and ledger arithmetic agree on."""

from __future__ import annotations

import base64
import hashlib
import math

import cv2
import httpx
import pytest

from airflow_image_catalog.imaging.engine import decode_image, encode_image
from airflow_image_catalog.pipeline.costing.pricing import cost_of_usage, estimate_edit, load_prices
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.tooling.samples import render_sample, sample_specs
from airflow_image_catalog.tooling.service import editor, tiers

PROMPTS = [step.prompt for step in load_recipe("marketplace_white_square").steps]


def test_stated_defect_rates_hold_over_many_images():
    """Over 4,000 distinct inputs each tier damages its stated share (within 4 sigma), easy and hard alike."""
    inputs = [hashlib.sha256(str(i).encode()).digest() for i in range(4000)]
    for tier in tiers.TIERS.values():
        for hard in (False, True):
            rate = tier.defect_rate(hard)
            damaged = sum(tiers.defect_for(tier, data, hard) is not None for data in inputs)
            sigma = math.sqrt(len(inputs) * rate * (1 - rate))
            assert abs(damaged - len(inputs) * rate) <= 4 * sigma + 1, (tier.model, hard, damaged)
    ordered = [tiers.TIERS[m] for m in ("emulated-lite", "emulated-standard", "emulated-pro")]
    for hard in (False, True):
        assert ordered[0].defect_rate(hard) > ordered[1].defect_rate(hard) > ordered[2].defect_rate(hard)


def test_decisions_are_fixed_by_the_image_and_the_tier():
    lite, standard = tiers.TIERS["emulated-lite"], tiers.TIERS["emulated-standard"]
    inputs = [hashlib.sha256(str(i).encode()).digest() for i in range(500)]
    first = [tiers.defect_for(lite, data, True) for data in inputs]
    assert first == [tiers.defect_for(lite, data, True) for data in inputs]  # a canary and a brute force agree
    assert first != [tiers.defect_for(standard, data, True) for data in inputs]
    assert {kind for kind in first if kind} == set(tiers.DEFECT_KINDS)  # every kind is made
    assert tiers.tier_for("gpt-image-2") is None


@pytest.fixture(scope="module")
def engine_edit() -> tuple[bytes, bytes]:
    """A labelled product (box_tea: text on the label, a hard input) at 480 px and the engine's marketplace edit."""
    image, _ = render_sample(sample_specs()[0], 7)
    h, w = image.shape[:2]
    small = cv2.resize(image, (480, round(h * 480 / w)), interpolation=cv2.INTER_AREA)
    source = encode_image(small, format="jpeg", quality=92)
    white, _, _ = editor.edit_pixels([source], PROMPTS[0], output_format="png")
    edited, _, _ = editor.edit_pixels([white], PROMPTS[1], size="1024x1024", output_format="jpeg", quality=92)
    return source, edited


def test_every_defect_kind_is_quarantined_by_the_real_gate(engine_edit):
    """The kinds a tier makes are ones the gate exists to catch: each one fails ``amazon_main`` (through GX),
    while the same edit left clean passes (with the product fill the service's 2000 -> 1024 fit gives, 84 %)."""
    from airflow_image_catalog.tooling.bench.quality import gate_rows

    source, edited = engine_edit
    clean = decode_image(edited)
    pairs = [("clean", source, edited)] + [
        (kind, source, encode_image(tiers.damage(clean, kind, source, "emulated-lite"), format="jpeg", quality=92))
        for kind in tiers.DEFECT_KINDS]
    verdicts = {image_id: [f["category"] for f in failed] for image_id, failed, _ in gate_rows(pairs)}
    assert set(verdicts.pop("clean")) <= {"framing"}  # at most the 84 % fill of the emulation path
    missed = [kind for kind, failed in verdicts.items() if not set(failed) - {"framing"}]
    assert missed == []


def _post(service, model: str, image: bytes, prompt: str = PROMPTS[0]) -> httpx.Response:
    return httpx.post(f"{service.openai_base_url}/images/edits",
                      data={"prompt": prompt, "model": model, "quality": "medium", "size": "1024x1024"},
                      files=[("image", ("p.jpg", image, "image/jpeg"))], timeout=60)


def test_the_service_answers_as_each_tier_and_the_price_table_prices_it(service, engine_edit):
    source, _ = engine_edit
    prices = load_prices()
    costs = {}
    for model in ("emulated-lite", "emulated-standard", "emulated-pro"):
        answer = _post(service, model, source)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        usage = body["usage"]
        record = {"provider": "openai", "model": model, "input_image_tokens": usage["input_tokens_details"][
            "image_tokens"], "input_text_tokens": usage["input_tokens_details"]["text_tokens"],
            "output_tokens": usage["output_tokens"]}
        costs[model] = cost_of_usage(record, prices)
        estimate = estimate_edit("openai", model, input_sizes=[(480, 360)], prompt=PROMPTS[0], size="1024x1024",
                                 quality="medium", prices=prices)
        assert estimate.low_usd <= costs[model] <= estimate.high_usd * 1.01  # the estimate prices what is billed
        assert "EMULATION" in prices.model("openai", model).source
        base64.b64decode(body["data"][0]["b64_json"], validate=True)
    assert costs["emulated-lite"] < costs["emulated-standard"] < costs["emulated-pro"]
    performed = service.state.performed
    assert [e["model"] for e in performed] == ["emulated-lite", "emulated-standard", "emulated-pro"]
    decided = [tiers.defect_for(tiers.TIERS[e["model"]], source, tiers.is_hard(decode_image(source)))
               for e in performed]
    assert [e["defect"] for e in performed] == decided  # the service records the damage it made
    refused = _post(service, "emulated-ultra", source)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
