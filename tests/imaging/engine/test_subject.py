from __future__ import annotations

import numpy as np
import pytest

from airflow_image_catalog.imaging.engine import (
    NoSubjectError,
    apply_op,
    backdrop_fit,
    decode_image,
    find_subject,
    subject_mask,
)
from airflow_image_catalog.imaging.engine.subject import MIN_BACKDROP_FIT

from .conftest import SAMPLE_STEMS, iou

IOU_MIN = 0.90


@pytest.mark.parametrize("stem", SAMPLE_STEMS)
def test_subject_mask_iou_against_truth(samples, subject_masks, stem):
    image, truth = samples[stem]
    mask = subject_masks[stem]
    assert mask.dtype == bool and mask.shape == truth.shape
    score = iou(mask, truth)
    assert score >= IOU_MIN, f"{stem}: IoU {score:.3f} < {IOU_MIN}"


def test_subject_mask_excludes_cast_shadow(samples, subject_masks):
    """The shadow is darker backdrop, not product: hardly any of the mask lies outside the truth."""
    for stem, (_, truth) in samples.items():
        mask = subject_masks[stem]
        outside = (mask & ~truth).sum() / truth.sum()
        assert outside < 0.06, f"{stem}: {outside:.3f} of the truth area is false positive"


def test_find_subject_trusts_product_shots(samples, subject_masks):
    for stem, (image, _) in samples.items():
        assert backdrop_fit(image) >= MIN_BACKDROP_FIT, stem
        assert np.array_equal(find_subject(image), subject_masks[stem]), stem


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_find_subject_refuses_scenes(sample_dirs, name):
    """Full-frame photos have no backdrop: a cut-out would be a guess, so the image fails clearly."""
    image = decode_image((sample_dirs[0] / f"photo_{name}.jpg").read_bytes())
    assert backdrop_fit(image) < MIN_BACKDROP_FIT
    with pytest.raises(NoSubjectError, match=r"no plain backdrop .* only \d+% of the border"):
        find_subject(image)
    with pytest.raises(NoSubjectError):
        apply_op("white_background", image, {})


def test_find_subject_refuses_an_empty_backdrop():
    flat = np.full((200, 300, 3), 180, np.uint8)
    with pytest.raises(NoSubjectError, match="no product found"):
        find_subject(flat)


def test_subject_mask_on_plain_image_does_not_crash():
    flat = np.full((200, 300, 3), 180, np.uint8)
    assert subject_mask(flat).sum() < 0.05 * flat.shape[0] * flat.shape[1]
