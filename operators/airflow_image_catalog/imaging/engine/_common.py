"""Shared pixel helpers: hex colours, sRGB linearisation, LAB, compositing.

Kept in one place so every op converts colour and blends edges the same way.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    """'#RRGGBB' (already validated) -> (r, g, b)."""
    digits = value.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round and clip a float image back to uint8."""
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def _srgb_decode_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear light in 0..1 (exact per-code LUT)."""
    return _srgb_decode_lut()[image]


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """float linear light (any range) -> uint8 sRGB, clipping out-of-gamut values."""
    c = np.clip(linear, 0.0, 1.0).astype(np.float32)
    out = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return to_uint8(out * 255.0)


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 CIE LAB (L 0..100, a/b about -128..127)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 CIE LAB -> uint8 sRGB."""
    return to_uint8(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB) * 255.0)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec.709 luma of an RGB array as float32 (0..255 for uint8 input)."""
    img = image.astype(np.float32)
    return img[..., 0] * 0.2126 + img[..., 1] * 0.7152 + img[..., 2] * 0.0722


def composite(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """fg over bg with alpha in 0..1 (HxW); bit-exact copies where alpha is 0 or 1.

    Only the partial band is blended in float, which keeps full-size composites cheap.
    """
    bg_full = np.broadcast_to(bg, fg.shape)
    out = np.array(bg_full, dtype=np.uint8, copy=True)
    full = alpha >= 1.0
    out[full] = fg[full]
    part = (alpha > 0.0) & ~full
    if part.any():
        a = alpha[part].astype(np.float32)[:, None]
        out[part] = to_uint8(fg[part].astype(np.float32) * a + bg_full[part].astype(np.float32) * (1.0 - a))
    return out


def feathered_alpha(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """Alpha that is 1 inside ``mask`` and ramps to 0 over ``feather_px`` pixels outside it.

    The ramp only extends outward, so the subject keeps its own pixels and the
    background beyond the band stays untouched.
    """
    m = mask.astype(np.uint8)
    if feather_px <= 0:
        return m.astype(np.float32)
    dist = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return np.clip(1.0 - dist / (feather_px + 1.0), 0.0, 1.0).astype(np.float32)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Binary dilation with a disc of radius ``px``."""
    if px <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """Binary erosion with a disc of radius ``px``."""
    if px <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open bounding box of True pixels, or None."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height): INTER_AREA when shrinking, clipped INTER_CUBIC when growing."""
    w, h = size
    if (w, h) == (image.shape[1], image.shape[0]):
        return image.copy()
    shrinking = w * h <= image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (w, h), interpolation=interp)  # uint8 cubic saturates, i.e. clips


# -- transparency -------------------------------------------------------------------------------------------
# An image is RGB (H, W, 3) or RGBA (H, W, 4) with straight (unassociated) alpha, as PNG and WebP store it.
# Colours under alpha 0 mean nothing: every op reads them through the alpha, never on their own.


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB view, alpha as float32 0..1 or None for an opaque image)."""
    if image.shape[-1] == 4:
        return image[..., :3], image[..., 3].astype(np.float32) / 255.0
    return image, None


def with_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Join RGB and a 0..1 alpha (None: the RGB as it is) into one array."""
    if alpha is None:
        return rgb
    return np.dstack([rgb, to_uint8(alpha * 255.0)])


def keep_alpha(source: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (an op's new colours) carrying ``source``'s alpha channel unchanged, if it has one."""
    return np.dstack([rgb, source[..., 3]]) if source.shape[-1] == 4 else rgb


def flatten(image: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """An RGBA image composited over a solid colour (an RGB image is returned as it is).

    Straight alpha over an opaque backdrop in sRGB values, as browsers and viewers show a PNG, so the
    flattened file looks like the transparent one did on that colour: no tint, and no fringe, because
    the colours under partly transparent pixels are weighted by their own alpha.
    """
    rgb, alpha = split_alpha(image)
    if alpha is None:
        return rgb
    return composite(rgb, np.asarray(background, np.uint8), alpha)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`resize` for RGB or RGBA; RGBA is resampled premultiplied.

    Resampling straight colours would pull the meaningless colours under transparent pixels into the
    edge (the dark fringe of naive PNG scaling); premultiplied, they weigh nothing.
    """
    rgb, alpha = split_alpha(image)
    if alpha is None:
        return resize(image, size)
    premultiplied = np.dstack([rgb.astype(np.float32) * alpha[..., None], alpha * 255.0])
    w, h = size
    shrinking = w * h <= image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    scaled = np.clip(cv2.resize(premultiplied, (w, h), interpolation=interp), 0.0, 255.0)
    a = scaled[..., 3] / 255.0
    colour = np.where(a[..., None] > 1e-6, scaled[..., :3] / np.maximum(a, 1e-6)[..., None], 255.0)
    return with_alpha(to_uint8(colour), a)
