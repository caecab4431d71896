from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_image_catalog.imaging.engine import apply_op


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


@pytest.mark.parametrize("stem", ["box_tea", "bottle_amber", "shoe_blue"])
@pytest.mark.parametrize("size", [(1000, 1000), (1200, 800)])
def test_fit_canvas_fill_border_and_no_crop(samples, stem, size):
    image, truth = samples[stem]
    white = apply_op("white_background", image, {}, mask=truth)
    w, h = size
    out = apply_op("fit_canvas", white, {"width": w, "height": h, "product_fill": 0.85})
    assert out.shape == (h, w, 3)
    product = (out != 255).any(-1)
    y0, y1, x0, x1 = _bbox(product)
    fill = max((y1 - y0) / h, (x1 - x0) / w)
    assert fill == pytest.approx(0.85, abs=0.02)
    # border beyond the product box is exactly the background
    assert (out[:y0] == 255).all() and (out[y1:] == 255).all()
    assert (out[:, :x0] == 255).all() and (out[:, x1:] == 255).all()
    # centred
    assert abs((y0 + y1) / 2 - h / 2) <= 2 and abs((x0 + x1) / 2 - w / 2) <= 2
    # never cropped: product area scales with the square of the linear scale factor
    ty0, ty1, tx0, tx1 = _bbox(truth)
    scale = (x1 - x0) / (tx1 - tx0)
    expected = truth.sum() * scale**2
    assert product.sum() == pytest.approx(expected, rel=0.05)
    assert (
        not product[0].any()
        and not product[-1].any()
        and not product[:, 0].any()
        and not product[:, -1].any()
    )


def test_fit_canvas_uses_mask_and_background_colour(small_sample):
    image, truth = small_sample
    out = apply_op("fit_canvas", image, {"width": 500, "height": 300, "background": "#102030"}, mask=truth)
    assert out.shape == (300, 500, 3)
    assert out[0, 0].tolist() == [0x10, 0x20, 0x30]
    assert out[:, 0].tolist() == [[0x10, 0x20, 0x30]] * 300


def test_fit_canvas_product_fill_zero_fits_whole_image():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255
    out = apply_op("fit_canvas", img, {"width": 400, "height": 400, "product_fill": 0.0})
    assert out.shape == (400, 400, 3)
    black = (out == 0).all(-1)
    y0, y1, x0, x1 = _bbox(black)
    assert (y1 - y0, x1 - x0) == (200, 400)  # whole 2:1 image, scaled x2, nothing cropped


def test_fit_canvas_blank_image_uses_whole_image():
    img = np.full((50, 80, 3), 255, np.uint8)
    out = apply_op("fit_canvas", img, {"width": 64, "height": 64})
    assert out.shape == (64, 64, 3) and (out == 255).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src_w=st.integers(1, 300),
    src_h=st.integers(1, 300),
    width=st.integers(16, 600),
    height=st.integers(16, 600),
    fill=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_fit_canvas_always_exact_size(src_w, src_h, width, height, fill, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (src_h, src_w, 3), dtype=np.uint8)
    before = img.copy()
    out = apply_op("fit_canvas", img, {"width": width, "height": height, "product_fill": fill})
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    assert np.array_equal(img, before)
