from __future__ import annotations

import cv2
import numpy as np

from airflow_image_catalog.imaging.engine import apply_op
from airflow_image_catalog.imaging.engine._common import dilate, erode, luminance, rgb_to_lab
from airflow_image_catalog.imaging.engine.subject import subject_mask


def _mean_hue(rgb: np.ndarray) -> float:
    lab = rgb_to_lab(rgb.reshape(-1, 1, 3))
    return float(np.degrees(np.arctan2(lab[..., 2].mean(), lab[..., 1].mean())))


def _hue(hex_rgb: tuple[int, int, int]) -> float:
    return _mean_hue(np.asarray([[hex_rgb]], np.uint8))


def test_recolor_region_moves_hue_and_keeps_outside(samples):
    image, truth = samples["ball_red"]
    out = apply_op("recolor_region", image, {"color": "#2060D0"}, mask=truth)
    target = _hue((0x20, 0x60, 0xD0))
    got = _mean_hue(out[truth])
    assert abs((got - target + 180) % 360 - 180) < 15, (got, target)
    assert abs(_mean_hue(image[truth]) - target) > 90  # it really was red before
    assert np.array_equal(out[~truth], image[~truth])
    # shading kept: lightness pattern inside the region strongly correlated with the source
    corr = np.corrcoef(luminance(image)[truth], luminance(out)[truth])[0, 1]
    assert corr > 0.9


def test_recolor_region_strength_zero_is_identity(small_sample):
    image, truth = small_sample
    out = apply_op("recolor_region", image, {"color": "#00FF00", "strength": 0.0}, mask=truth)
    assert np.abs(out.astype(int) - image.astype(int)).max() <= 1


def test_remove_object_fills_from_background(samples):
    image, truth = samples["box_kraft"]
    img = image.copy()
    h, w = img.shape[:2]
    centre, radius = (int(w * 0.12), int(h * 0.12)), int(min(h, w) * 0.03)
    assert not truth[
        centre[1] - 2 * radius : centre[1] + 2 * radius, centre[0] - 2 * radius : centre[0] + 2 * radius
    ].any()
    cv2.circle(img, centre, radius, (200, 20, 20), -1, lineType=cv2.LINE_AA)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    mask = mask.astype(bool)
    out = apply_op("remove_object", img, {}, mask=mask)
    region = dilate(mask, 2)
    diff = np.abs(out[region].astype(float) - image[region].astype(float)).mean()
    assert diff < 8, diff  # close to the untouched backdrop
    assert np.abs(img[region].astype(float) - image[region].astype(float)).mean() > 40  # disc was visible
    outside = ~dilate(mask, 4)
    assert np.array_equal(out[outside], img[outside])


def test_place_object_inside_bbox_with_matched_brightness(samples):
    scene, _ = samples["mug_white"]
    product, _ = samples["ball_red"]
    h, w = scene.shape[:2]
    mask = np.zeros((h, w), bool)
    y0, y1, x0, x1 = 40, 340, 60, 460
    mask[y0:y1, x0:x1] = True
    out = apply_op("place_object", scene, {"margin": 0.05}, mask=mask, references=[product])
    changed = (out != scene).any(-1)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 0.2 * mask.sum()
    assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1
    # aspect preserved: a ball stays round (bbox of changed pixels ~square)
    assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) < 0.1 * (ys.max() - ys.min())
    placed = erode(changed, 3)
    ring = np.zeros((h, w), bool)
    pad = int(0.15 * 400)
    ring[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = True
    ring[y0:y1, x0:x1] = False
    surround = luminance(scene)[ring].mean()
    assert abs(luminance(out)[placed].mean() - surround) < 0.12 * surround
    plain = apply_op("place_object", scene, {"match_brightness": False}, mask=mask, references=[product])
    assert abs(luminance(plain)[placed].mean() - surround) > abs(luminance(out)[placed].mean() - surround)


def test_place_object_uses_subject_of_reference(samples):
    scene = np.full((300, 300, 3), 128, np.uint8)
    product, _ = samples["ball_teal"]
    mask = np.zeros((300, 300), bool)
    mask[50:250, 50:250] = True
    out = apply_op("place_object", scene, {"margin": 0.0}, mask=mask, references=[product])
    placed = (out != scene).any(-1)
    ref_mask = subject_mask(product)
    # the reference's backdrop is not pasted: the placed area is about the ball's disc, not its frame
    assert abs(_box_fill(placed) - _box_fill(ref_mask)) < 0.08


def _box_fill(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float(mask.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
