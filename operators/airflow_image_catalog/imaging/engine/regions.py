"""Masked ops: recolour, remove and place objects. Pixels outside the mask never change.

On a cut-out (RGBA) the alpha is edited with the colours: a removed object's opacity is filled from
its surroundings like its colours, a placed object adds its own opacity.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ._common import (
    bbox,
    composite,
    dilate,
    hex_to_rgb,
    keep_alpha,
    lab_to_rgb,
    luminance,
    resize_image,
    rgb_to_lab,
    split_alpha,
    to_uint8,
    with_alpha,
)
from .ops import engine_op, p_bool, p_choice, p_float, p_hex, p_int
from .subject import subject_mask


@engine_op("recolor_region", needs_mask=True, color=p_hex("#C0392B"), strength=p_float(1.0, 0.0, 1.0))
def recolor_region(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    color: str,
    strength: float,
) -> np.ndarray:
    """Move the region's chroma (LAB a/b) to the target colour, keeping its lightness and shading."""
    m = mask.astype(bool)
    if not m.any():
        return image.copy()
    target = rgb_to_lab(np.asarray([[hex_to_rgb(color)]], np.uint8))[0, 0]
    rgb, alpha = split_alpha(image)
    lab = rgb_to_lab(rgb)
    ab = lab[..., 1:]
    weights = m if alpha is None else m & (alpha >= 0.5)
    mean_ab = ab[weights if weights.any() else m].mean(axis=0)
    # keep the region's chroma variation (texture), re-centred on the target's chroma
    lab[..., 1:] = ab + (target[1:] - mean_ab) * strength
    recoloured = lab_to_rgb(lab)
    return keep_alpha(image, np.where(m[..., None], recoloured, rgb))


@engine_op(
    "remove_object",
    needs_mask=True,
    dilate_px=p_int(4, 0, 50),
    radius=p_int(7, 1, 50),
    method=p_choice("telea", "telea", "ns"),
)
def remove_object(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    dilate_px: int,
    radius: int,
    method: str,
) -> np.ndarray:
    """Inpaint the (slightly dilated) mask from its surroundings."""
    region = dilate(mask, dilate_px)
    if not region.any():
        return image.copy()
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    holes = region.astype(np.uint8) * 255
    filled = cv2.inpaint(np.ascontiguousarray(image[..., :3]), holes, radius, flag)
    if image.shape[-1] == 4:
        opacity = cv2.inpaint(np.ascontiguousarray(image[..., 3]), holes, radius, flag)
        filled = np.dstack([filled, opacity])
    return np.where(region[..., None], filled, image)


def _surround_luma(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean luminance of a ring around the box (the scene the object will sit in)."""
    h, w = image.shape[:2]
    y0, y1, x0, x1 = box
    pad = max(4, int(0.15 * max(y1 - y0, x1 - x0)))
    ring = np.zeros((h, w), bool)
    ring[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = True
    ring[y0:y1, x0:x1] = False
    lum = luminance(image)
    return float(lum[ring].mean() if ring.any() else lum[y0:y1, x0:x1].mean())


def _match_luma(obj: np.ndarray, region: np.ndarray, target: float) -> np.ndarray:
    """Scale the object so its mean luminance hits ``target``; iterate because bright channels clip."""
    work = obj.astype(np.float32)
    for _ in range(4):
        current = float(luminance(work)[region].mean())
        if current <= 1.0 or abs(current - target) < 0.5:
            break
        work = np.clip(work * np.clip(target / current, 0.25, 4.0), 0, 255)
    return to_uint8(work)


@engine_op(
    "place_object",
    needs_mask=True,
    needs_reference=True,
    match_brightness=p_bool(True),
    margin=p_float(0.05, 0.0, 0.4),
)
def place_object(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    match_brightness: bool,
    margin: float,
) -> np.ndarray:
    """Fit references[0]'s product into the mask's bounding box and composite it there."""
    box = bbox(mask)
    if box is None:
        return image.copy()
    ref_rgb, ref_alpha = split_alpha(references[0])
    ref_subject = subject_mask(references[0])
    ref_box = bbox(ref_subject) or (0, ref_rgb.shape[0], 0, ref_rgb.shape[1])
    if bbox(ref_subject) is None:
        ref_subject = np.ones(ref_rgb.shape[:2], bool)
    matte = ref_subject.astype(np.float32) if ref_alpha is None else ref_alpha
    ry0, ry1, rx0, rx1 = ref_box
    obj, alpha = ref_rgb[ry0:ry1, rx0:rx1], matte[ry0:ry1, rx0:rx1]
    y0, y1, x0, x1 = box
    bh, bw = (y1 - y0) * (1 - 2 * margin), (x1 - x0) * (1 - 2 * margin)
    scale = min(bw / obj.shape[1], bh / obj.shape[0])
    nw, nh = max(1, int(round(obj.shape[1] * scale))), max(1, int(round(obj.shape[0] * scale)))
    nw, nh = min(nw, x1 - x0), min(nh, y1 - y0)
    obj, alpha = split_alpha(resize_image(with_alpha(obj, alpha), (nw, nh)))  # premultiplied: no fringe
    if match_brightness:
        obj_luma = float(luminance(obj)[alpha > 0.5].mean()) if (alpha > 0.5).any() else 0.0
        if obj_luma > 1.0:
            obj = _match_luma(obj, alpha > 0.5, _surround_luma(image, box))
    out = image.copy()
    top, left = y0 + (y1 - y0 - nh) // 2, x0 + (x1 - x0 - nw) // 2
    window = out[top : top + nh, left : left + nw]
    target_rgb, target_alpha = split_alpha(window)
    if target_alpha is None:
        out[top : top + nh, left : left + nw] = composite(obj, window, alpha)
        return out
    # "over" on a cut-out: colours weighted by each layer's own opacity, opacities added
    opacity = alpha + target_alpha * (1.0 - alpha)
    weight = np.divide(alpha, opacity, out=np.zeros_like(alpha), where=opacity > 0)
    colours = composite(obj, target_rgb, weight)
    out[top : top + nh, left : left + nw] = np.dstack([colours, to_uint8(opacity * 255.0)])
    return out
