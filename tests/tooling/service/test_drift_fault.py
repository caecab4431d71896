"""The ``drift`` fault: a successful edit whose product has drifted, as the quality gate must see it."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.pipeline.quality.metrics import phash, phash_distance, product_bbox, ssim
from airflow_image_catalog.tooling.service.faults import Fault, parse_fault
from tests.fixtures.service import product_png, wait_until

SOURCE = product_png(texture=True)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _drift(edited: bytes) -> tuple[int, float]:
    """(pHash distance, SSIM) of the source's product region, source vs edit."""
    source, out = _pixels(SOURCE), _pixels(edited)
    y0, y1, x0, x1 = product_bbox(source)
    region = np.zeros(source.shape[:2], bool)
    region[y0:y1, x0:x1] = True
    return phash_distance(phash(source, region), phash(out, region)), ssim(source, out, region)


def _b64_image(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"][0]["b64_json"])


def test_drift_rotates_and_recolours_the_product_but_keeps_size_and_backdrop(service, edit):
    service.state.faults.add(kind="drift", path="/v1/images/edits", prompt_contains="GOLDEN")
    other = _b64_image(edit(image=SOURCE, prompt="Brighten the photo."))  # the rule's prompt does not match
    drifted = _b64_image(edit(image=SOURCE))
    normal = _b64_image(edit(image=SOURCE))  # the rule is used up
    (other_hash, _), (normal_hash, normal_ssim), (drift_hash, drift_ssim) = map(_drift, (other, normal, drifted))
    assert other_hash <= 6 and normal_hash <= 6 and normal_ssim > 0.95
    assert drift_hash >= normal_hash + 12 and drift_ssim < 0.8
    a, b = _pixels(normal), _pixels(drifted)
    assert a.shape == b.shape
    assert np.abs(a[:4, :4].astype(int) - b[:4, :4]).max() <= 2  # the backdrop is the edit's own
    assert service.stats()["performed"] == 3 and service.state.faults.to_list()[0]["count"] == 0


def test_drift_applies_to_bfl_jobs(service, bfl_submit):
    service.state.faults.add(kind="drift", path="/v1/flux")
    poll = bfl_submit(image=SOURCE).json()["polling_url"]
    wait_until(lambda: httpx.get(poll, timeout=5).json()["status"] == "Ready")
    sample = httpx.get(httpx.get(poll, timeout=5).json()["result"]["sample"], timeout=5).content
    distance, similarity = _drift(sample)
    assert distance >= 16 and similarity < 0.8


def test_prompt_contains_parses_and_only_goes_where_the_prompt_is_known():
    assert parse_fault("drift:2,prompt_contains=golden") == Fault("drift", count=2, prompt_contains="golden")
    with pytest.raises(ValueError, match="prompt_contains"):
        Fault("status", prompt_contains="golden")
