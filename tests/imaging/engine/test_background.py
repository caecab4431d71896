from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from airflow_image_catalog.imaging.engine import OpParamError, apply_op
from airflow_image_catalog.imaging.engine._common import dilate, erode

from .conftest import SAMPLE_STEMS

SSIM_MIN = 0.95


def _ssim_in_region(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    ys, xs = np.nonzero(region)
    win = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    _, full = structural_similarity(a[win], b[win], channel_axis=-1, full=True, data_range=255)
    return float(full.mean(axis=-1)[region[win]].mean())


@pytest.mark.parametrize("stem", SAMPLE_STEMS)
def test_white_background_is_pure_and_keeps_product(samples, stem):
    image, truth = samples[stem]
    out = apply_op("white_background", image, {})
    outside = ~dilate(truth, 8)  # segmentation edge error (<= ~5 px) + 1 px feather
    assert (out[outside] == 255).all(), f"{stem}: {(out[outside] != 255).any(-1).sum()} impure pixels"
    inner = erode(truth, 4)
    score = _ssim_in_region(image, out, inner)
    assert score > SSIM_MIN, f"{stem}: product SSIM {score:.3f}"


def test_white_background_input_not_mutated(small_sample):
    image, _ = small_sample
    before = image.copy()
    apply_op("white_background", image, {"shadow": True})
    assert np.array_equal(image, before)


def test_white_background_shadow_only_under_product(small_sample):
    image, truth = small_sample
    out = apply_op("white_background", image, {"shadow": True, "shadow_opacity": 0.5})
    ys, xs = np.nonzero(truth)
    below = out[ys.max() + 2 : ys.max() + 8, int(xs.mean()) - 5 : int(xs.mean()) + 5]
    assert below.mean() < 250  # visible shadow just under the product
    top_band = out[: ys.min() - 10]
    assert (top_band == 255).all()
    assert (out[:, :10] == 255).all() and (out[:, -10:] == 255).all()


def test_replace_background_color(small_sample):
    image, truth = small_sample
    out = apply_op("replace_background", image, {"mode": "color", "color": "#336699"})
    assert (out[~dilate(truth, 6)] == (0x33, 0x66, 0x99)).all()
    assert np.array_equal(out[erode(truth, 3)], image[erode(truth, 3)])


def test_replace_background_gradient(small_sample):
    image, truth = small_sample
    out = apply_op(
        "replace_background", image, {"mode": "gradient", "color": "#000000", "color_to": "#FFFFFF"}
    )
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[-1, 0].tolist() == [255, 255, 255]
    column = out[:, 0, 0].astype(int)
    assert (np.diff(column) >= 0).all()  # monotone top -> bottom
    radial = apply_op(
        "replace_background",
        image,
        {"mode": "gradient", "direction": "radial", "color": "#FF0000", "color_to": "#0000FF"},
    )
    assert radial[0, 0, 2] > radial[0, 0, 0]  # corners take color_to


def test_replace_background_image(small_sample):
    image, truth = small_sample
    ref = np.zeros((50, 80, 3), np.uint8)
    ref[:, :40] = (255, 0, 0)
    ref[:, 40:] = (0, 0, 255)
    out = apply_op("replace_background", image, {"mode": "image"}, references=[ref])
    assert out[5, 5].tolist() == [255, 0, 0]
    assert out[5, -5].tolist() == [0, 0, 255]
    assert np.array_equal(out[erode(truth, 3)], image[erode(truth, 3)])


def test_replace_background_image_needs_reference(small_sample):
    image, _ = small_sample
    with pytest.raises(OpParamError) as exc:
        apply_op("replace_background", image, {"mode": "image"})
    assert exc.value.field == "references"
