"""Transparency: a cut-out's alpha is the product's mask for every op, resampled and composited correctly."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.imaging.engine import (
    apply_op,
    decode_image,
    encode_image,
    find_subject,
    flatten,
    has_transparency,
)
from airflow_image_catalog.imaging.engine._common import dilate, resize_image
from airflow_image_catalog.imaging.engine.errors import NoSubjectError, OpParamError
from airflow_image_catalog.tooling.gallery import by_name


@pytest.fixture(scope="module")
def present() -> np.ndarray:
    """The gift box cut-out matplotlib ships (RGBA, straight alpha)."""
    return decode_image(by_name("present_cutout_large").data, keep_alpha=True)


def _png(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


def test_decode_keeps_a_cutouts_alpha_only_when_asked(present):
    data = by_name("present_cutout").data
    flat, rgba = decode_image(data), decode_image(data, keep_alpha=True)
    assert flat.shape == (128, 128, 3) and rgba.shape == (128, 128, 4)
    with Image.open(io.BytesIO(data)) as img:
        assert np.array_equal(rgba, np.asarray(img.convert("RGBA")))  # straight alpha, exactly as stored
    assert np.array_equal(flat, flatten(rgba))  # the default is the same image flattened on white
    assert np.array_equal(find_subject(rgba), rgba[..., 3] >= 128)  # no segmentation: the alpha itself


def test_an_opaque_or_barely_transparent_alpha_is_a_photo():
    rgba = np.full((64, 64, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 10  # one stray pixel (an editor's artefact) does not make a cut-out
    assert not has_transparency(rgba[..., 3])
    assert decode_image(_png(rgba, "RGBA"), keep_alpha=True).shape == (64, 64, 3)
    rgba[:8, :8, 3] = 0
    assert has_transparency(rgba[..., 3])
    la = np.dstack([rgba[..., 0], rgba[..., 3]])  # grey + alpha decodes to RGBA too
    assert decode_image(_png(la, "LA"), keep_alpha=True).shape == (64, 64, 4)


def test_a_transparent_image_has_no_product():
    empty = np.zeros((32, 32, 4), np.uint8)
    with pytest.raises(NoSubjectError, match="transparent all over"):
        find_subject(empty)
    with pytest.raises(NoSubjectError, match="transparent all over"):
        apply_op("white_background", empty)


def test_premultiplied_resampling_leaves_no_dark_fringe():
    rgba = np.zeros((64, 64, 4), np.uint8)  # black (meaningless) colours under the transparency
    rgba[16:48, 16:48] = (255, 255, 255, 255)
    small = resize_image(rgba, (21, 21))
    edge = (small[..., 3] > 0) & (small[..., 3] < 255)
    assert edge.any()
    assert (small[..., :3][edge] >= 254).all()  # straight colour stays white on the soft edge
    naive = cv2.resize(rgba, (21, 21), interpolation=cv2.INTER_AREA)  # straight-alpha resampling
    assert (naive[..., :3][edge] < 200).any()  # ... darkens the edge


def test_white_background_composites_through_the_alpha(present):
    out = apply_op("white_background", present)
    assert out.shape[-1] == 3
    alpha = present[..., 3]
    assert (out[alpha == 0] == 255).all()  # the transparency is pure white
    assert np.array_equal(out[alpha == 255], present[..., :3][alpha == 255])  # the product untouched
    assert np.array_equal(out, flatten(present))  # soft edges and the drop shadow as a viewer shows them


def test_replace_background_keeps_the_whole_cutout(present):
    out = apply_op("replace_background", present, {"mode": "color", "color": "#204060"})
    alpha = present[..., 3]
    assert (out[alpha == 0] == (0x20, 0x40, 0x60)).all()
    assert np.array_equal(out[alpha == 255], present[..., :3][alpha == 255])


@pytest.mark.parametrize(("op", "params"), [("white_balance", {}), ("exposure", {"stops": 0.5}),
                                            ("saturation", {"factor": 1.4}), ("look", {"name": "golden_hour"})])
def test_colour_ops_change_the_product_and_keep_the_alpha(present, op, params):
    out = apply_op(op, present, params)
    assert out.shape == present.shape
    assert np.array_equal(out[..., 3], present[..., 3])
    opaque = present[..., 3] == 255
    assert np.abs(out[..., :3][opaque].astype(int) - present[..., :3][opaque]).mean() > 1.0
    assert (flatten(out)[present[..., 3] == 0] == 255).all()  # flattened later: no tinted backdrop


def test_white_balance_statistics_ignore_the_transparency(present):
    garbage = present.copy()
    garbage[present[..., 3] == 0, :3] = (0, 255, 0)  # what lies under alpha 0 must not matter
    assert np.array_equal(apply_op("white_balance", garbage)[present[..., 3] > 0],
                          apply_op("white_balance", present)[present[..., 3] > 0])


def test_fit_canvas_keeps_a_cutout_whole_and_transparent(present):
    out = apply_op("fit_canvas", present, {"width": 800, "height": 600, "product_fill": 0.85})
    assert out.shape == (600, 800, 4)
    visible = out[..., 3] > 0
    rows = np.flatnonzero(visible.any(axis=1))
    assert rows[-1] + 1 - rows[0] == round(0.85 * 600)  # every visible pixel of the source is inside
    assert out[0, 0, 3] == 0 and out[-1, -1, 3] == 0  # padding is transparent


def test_color_match_on_a_cutout_recolours_its_soft_edge_too(present):
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[..., 0] = 220
    out = apply_op("color_match", present, {"region": "all"}, references=[reference])
    assert np.array_equal(out[..., 3], present[..., 3])
    core = present[..., 3] >= 128
    soft = (present[..., 3] > 0) & ~core & dilate(core, 2)  # the product's anti-aliased rim
    changed = (out[..., :3][soft].astype(int) - present[..., :3][soft]).any(axis=-1)
    assert soft.sum() > 500 and changed.mean() > 0.9


def test_remove_object_fills_the_alpha_from_its_surroundings(present):
    region = np.zeros(present.shape[:2], bool)
    region[200:230, 0:60] = True  # straddles the box's left edge and the transparency beside it
    out = apply_op("remove_object", present, {"dilate_px": 0}, mask=region)
    assert out.shape == present.shape
    assert np.array_equal(out[~region], present[~region])
    before, after = present[..., 3][region], out[..., 3][region]
    assert (before == 0).any() and (before == 255).any() and not np.array_equal(before, after)


def test_encode_keeps_alpha_where_the_format_can(present):
    for fmt in ("png", "webp"):
        back = decode_image(encode_image(present, format=fmt), keep_alpha=True)
        assert back.shape == present.shape
        assert np.abs(back[..., 3].astype(int) - present[..., 3]).max() <= 1
    with pytest.raises(OpParamError, match="jpeg cannot carry transparency") as exc:
        encode_image(present, format="jpeg")
    assert exc.value.field == "format"
