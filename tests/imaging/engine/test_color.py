from __future__ import annotations

import numpy as np
import pytest

from airflow_image_catalog.imaging.engine import apply_op
from airflow_image_catalog.imaging.engine._common import dilate, rgb_to_lab, srgb_to_linear
from airflow_image_catalog.imaging.engine.color import LOOK_NAMES


def _spread(image: np.ndarray) -> float:
    means = image.reshape(-1, 3).astype(float).mean(axis=0)
    return float(means.max() - means.min())


@pytest.mark.parametrize("method", ["gray_world", "white_patch"])
def test_white_balance_removes_cast(samples, method):
    image, _ = samples["box_kraft"]
    neutral = apply_op("saturation", image, {"factor": 0.0})  # a neutral scene ...
    cast = np.clip(neutral.astype(float) * (1.15, 1.0, 0.75), 0, 255).astype(np.uint8)  # ... with a warm cast
    out = apply_op("white_balance", cast, {"method": method})
    assert _spread(cast) > 20
    assert _spread(out) < 0.3 * _spread(cast)
    half = apply_op("white_balance", cast, {"method": method, "strength": 0.5})
    assert _spread(out) < _spread(half) < _spread(cast)


def test_exposure_plus_one_stop_doubles_linear_light():
    grey = np.full((8, 8, 3), 118, np.uint8)  # ~18 % linear
    out = apply_op("exposure", grey, {"stops": 1.0})
    ratio = srgb_to_linear(out).mean() / srgb_to_linear(grey).mean()
    assert ratio == pytest.approx(2.0, rel=0.02)
    down = apply_op("exposure", grey, {"stops": -1.0})
    assert srgb_to_linear(down).mean() / srgb_to_linear(grey).mean() == pytest.approx(0.5, rel=0.02)
    assert np.array_equal(apply_op("exposure", grey, {"stops": 0}), grey)


def test_saturation_zero_is_grey_and_two_is_more_colourful(samples):
    image, truth = samples["box_kraft"]
    grey = apply_op("saturation", image, {"factor": 0.0})
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    vivid = apply_op("saturation", image, {"factor": 2.0})
    chroma = lambda im: np.hypot(*rgb_to_lab(im)[truth][:, 1:].T).mean()  # noqa: E731
    assert chroma(vivid) > 1.5 * chroma(image)


@pytest.mark.parametrize("name", LOOK_NAMES)
def test_looks_change_image_and_strength_zero_is_identity(small_sample, name):
    image, _ = small_sample
    out = apply_op("look", image, {"name": name})
    assert np.abs(out.astype(int) - image.astype(int)).mean() > 2
    assert np.array_equal(apply_op("look", image, {"name": name, "strength": 0.0}), image)
    half = apply_op("look", image, {"name": name, "strength": 0.5})
    d_half = np.abs(half.astype(int) - image.astype(int)).mean()
    assert 0 < d_half < np.abs(out.astype(int) - image.astype(int)).mean()


def test_noir_is_monochrome(small_sample):
    out = apply_op("look", small_sample[0], {"name": "noir"})
    assert np.abs(out[..., 0].astype(int) - out[..., 2].astype(int)).max() <= 1


def test_color_match_moves_lab_means_toward_reference(samples):
    image, truth = samples["ball_red"]
    ref, ref_truth = samples["ball_teal"]
    out = apply_op("color_match", image, {}, references=[ref])
    mean = lambda im, m: rgb_to_lab(im)[m].mean(axis=0)  # noqa: E731
    before = np.abs(mean(image, truth) - mean(ref, ref_truth))[1:].sum()
    after = np.abs(mean(out, truth) - mean(ref, ref_truth))[1:].sum()
    assert after < 0.25 * before
    background = ~dilate(truth, 25)
    assert np.array_equal(out[background], image[background])  # region=subject leaves backdrop alone
    everywhere = apply_op("color_match", image, {"region": "all"}, references=[ref])
    full_before = np.abs(
        rgb_to_lab(image).reshape(-1, 3).mean(0) - rgb_to_lab(ref).reshape(-1, 3).mean(0)
    ).sum()
    full_after = np.abs(
        rgb_to_lab(everywhere).reshape(-1, 3).mean(0) - rgb_to_lab(ref).reshape(-1, 3).mean(0)
    ).sum()
    assert full_after < 0.2 * full_before
