"""Global colour ops: white balance, exposure, saturation, looks and colour matching.

On a cut-out (RGBA) they change the product's colours only: the alpha is kept as it is, and the
statistics (grey world, colour transfer) are taken over the product's own pixels, never over the
meaningless colours under its transparency.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from ._common import (
    dilate,
    keep_alpha,
    lab_to_rgb,
    linear_to_srgb,
    rgb_to_lab,
    split_alpha,
    srgb_to_linear,
    to_uint8,
)
from .ops import engine_op, p_choice, p_float
from .subject import resolve_subject, subject_mask

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec.601, the weights PIL/OpenCV use for "grey"


def blend(original: np.ndarray, edited: np.ndarray, strength: float) -> np.ndarray:
    """strength 0 returns the original exactly, 1 the edit."""
    if strength >= 1.0:
        return edited
    if strength <= 0.0:
        return original.copy()
    o = original.astype(np.float32)
    return to_uint8(o + (edited.astype(np.float32) - o) * strength)


def scale_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Push pixels away from (factor > 1) or towards (factor < 1) their own grey value."""
    img = image.astype(np.float32)
    grey = (img @ _LUMA)[..., None]
    return to_uint8(grey + (img - grey) * factor)


@engine_op(
    "white_balance",
    method=p_choice("gray_world", "gray_world", "white_patch"),
    strength=p_float(1.0, 0.0, 1.0),
)
def white_balance(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    method: str,
    strength: float,
) -> np.ndarray:
    """Remove a colour cast with per-channel gains computed in linear light."""
    rgb, alpha = split_alpha(image)
    lin = srgb_to_linear(rgb)
    usable = (rgb < 250).all(axis=-1) & (rgb > 5).all(axis=-1)  # clipped pixels carry no cast info
    if alpha is not None:
        usable &= alpha >= 0.5
    pix = lin[usable] if usable.sum() > 100 else lin.reshape(-1, 3)
    if method == "white_patch":
        ref = np.percentile(pix, 99.0, axis=0)
        target = np.full(3, ref.max(), np.float32)
    else:
        ref = pix.mean(axis=0)
        target = np.full(3, float(ref @ np.array([0.2126, 0.7152, 0.0722])), np.float32)
    gains = target / np.maximum(ref, 1e-6)
    gains = 1.0 + (gains - 1.0) * strength
    return keep_alpha(image, linear_to_srgb(lin * gains.astype(np.float32)))


@engine_op("exposure", stops=p_float(0.0, -3.0, 3.0))
def exposure(
    image: np.ndarray, *, mask: np.ndarray | None = None, references: Sequence[np.ndarray] = (), stops: float
) -> np.ndarray:
    """Multiply linear light by 2**stops, as a camera exposure change would."""
    if stops == 0:
        return image.copy()
    return keep_alpha(image, linear_to_srgb(srgb_to_linear(image[..., :3]) * np.float32(2.0**stops)))


@engine_op("saturation", factor=p_float(1.0, 0.0, 3.0))
def saturation(
    image: np.ndarray, *, mask: np.ndarray | None = None, references: Sequence[np.ndarray] = (), factor: float
) -> np.ndarray:
    """Scale colourfulness; 0 gives an exact greyscale image."""
    return keep_alpha(image, scale_saturation(image[..., :3], factor))


# (per-channel gamma, per-channel gain, lift, contrast, saturation)
_LOOKS: dict[str, dict[str, tuple[float, float, float] | float]] = {
    "warm": {
        "gamma": (0.95, 1.0, 1.08),
        "gain": (1.06, 1.0, 0.9),
        "lift": 0.0,
        "contrast": 0.05,
        "sat": 1.08,
    },
    "cool": {
        "gamma": (1.08, 1.0, 0.95),
        "gain": (0.92, 0.99, 1.06),
        "lift": 0.0,
        "contrast": 0.05,
        "sat": 1.0,
    },
    "vintage": {
        "gamma": (0.92, 1.0, 1.1),
        "gain": (1.02, 0.97, 0.85),
        "lift": 0.08,
        "contrast": -0.12,
        "sat": 0.75,
    },
    "noir": {"gamma": (1.0, 1.0, 1.0), "gain": (1.0, 1.0, 1.0), "lift": 0.0, "contrast": 0.35, "sat": 0.0},
    "vivid": {"gamma": (1.0, 1.0, 1.0), "gain": (1.0, 1.0, 1.0), "lift": 0.0, "contrast": 0.2, "sat": 1.4},
    "matte": {
        "gamma": (1.0, 1.0, 1.0),
        "gain": (0.97, 0.97, 0.97),
        "lift": 0.1,
        "contrast": -0.15,
        "sat": 0.9,
    },
    "golden_hour": {
        "gamma": (0.9, 0.97, 1.15),
        "gain": (1.1, 1.02, 0.82),
        "lift": 0.02,
        "contrast": 0.1,
        "sat": 1.15,
    },
}
LOOK_NAMES = tuple(_LOOKS)


@cache
def look_lut(name: str) -> tuple[np.ndarray, float]:
    """256-entry per-channel curves (shape (256, 1, 3) for cv2.LUT) and the look's saturation factor."""
    spec = _LOOKS[name]
    x = np.linspace(0.0, 1.0, 256)
    k = float(spec["contrast"])
    s_curve = x + k * np.sin(2 * np.pi * x) / (2 * np.pi) * -1  # k>0 steepens mid-tones, keeps 0 and 1
    curves = []
    for c in range(3):
        y = s_curve ** spec["gamma"][c] * spec["gain"][c]
        y = spec["lift"] + y * (1 - spec["lift"])
        curves.append(np.clip(np.rint(y * 255), 0, 255))
    lut = np.stack(curves, axis=-1).astype(np.uint8).reshape(256, 1, 3)
    lut.flags.writeable = False
    return lut, float(spec["sat"])


@engine_op("look", name=p_choice("warm", *LOOK_NAMES), strength=p_float(1.0, 0.0, 1.0))
def look(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    name: str,
    strength: float,
) -> np.ndarray:
    """Apply a named colour grade (cached LUT + saturation), blended by strength."""
    if strength <= 0:
        return image.copy()
    lut, sat = look_lut(name)
    rgb = image[..., :3]
    graded = cv2.LUT(np.ascontiguousarray(rgb), lut)
    if sat != 1.0:
        graded = scale_saturation(graded, sat)
    return keep_alpha(image, blend(rgb, graded, strength))


def _lab_stats(lab: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pix = lab[region] if region.any() else lab.reshape(-1, 3)
    return pix.mean(axis=0), np.maximum(pix.std(axis=0), 1e-3)


@engine_op(
    "color_match",
    needs_reference=True,
    strength=p_float(1.0, 0.0, 1.0),
    region=p_choice("subject", "all", "subject"),
)
def color_match(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    strength: float,
    region: str,
) -> np.ndarray:
    """Reinhard mean/std transfer in LAB from references[0] (subject to subject by default)."""
    ref = references[0]
    rgb, alpha = split_alpha(image)
    if region == "subject":
        src_region = resolve_subject(image, mask)
        ref_region = subject_mask(ref)
    else:  # a cut-out's whole image is its product: its transparency holds no colours to match
        src_region = np.ones(image.shape[:2], bool) if alpha is None else alpha >= 0.5
        ref_region = np.ones(ref.shape[:2], bool) if ref.shape[-1] == 3 else ref[..., 3] >= 128
    lab = rgb_to_lab(rgb)
    mu_s, sd_s = _lab_stats(lab, src_region)
    mu_r, sd_r = _lab_stats(rgb_to_lab(ref[..., :3]), ref_region)
    matched = lab_to_rgb((lab - mu_s) / sd_s * sd_r + mu_r)
    out = blend(rgb, matched, strength)
    if alpha is not None:  # a cut-out's soft edge changes with the product, or it keeps the old colour
        src_region = src_region | ((alpha > 0) & dilate(src_region, 2))
    return keep_alpha(image, np.where(src_region[..., None], out, rgb))
