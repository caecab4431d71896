"""Background ops: pure white (marketplace main image) and replacement backdrops."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ._common import bbox, composite, flatten, hex_to_rgb, resize, to_uint8
from .errors import OpParamError
from .matte import product_matte
from .ops import engine_op, p_bool, p_choice, p_float, p_hex, p_int

WHITE = np.array([255, 255, 255], np.uint8)


def contact_shadow(subject: np.ndarray, opacity: float) -> np.ndarray:
    """Darkening factor 0..opacity of a blurred ellipse under the subject's bottom edge."""
    h, w = subject.shape
    box = bbox(subject)
    shade = np.zeros((h, w), np.float32)
    if box is None or opacity <= 0:
        return shade
    y0, y1, x0, x1 = box
    bw, bh = x1 - x0, y1 - y0
    centre = (int(round((x0 + x1) / 2)), int(min(h - 1, y1)))
    axes = (max(2, int(bw * 0.45)), max(2, int(max(bh * 0.035, 3))))
    cv2.ellipse(shade, centre, axes, 0, 0, 360, 1.0, -1)
    sigma = max(2.0, axes[1] * 1.2)
    shade = cv2.GaussianBlur(shade, (0, 0), sigma) * opacity
    shade[shade < 0.5 / 255] = 0.0  # invisible tails must not dirty the pure background
    return shade


@engine_op(
    "white_background",
    shadow=p_bool(False),
    shadow_opacity=p_float(0.25, 0.0, 1.0),
    feather_px=p_int(1, 0, 8),
)
def white_background(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    shadow: bool,
    shadow_opacity: float,
    feather_px: int,
) -> np.ndarray:
    """Put the product on pure RGB(255,255,255), optionally with a soft contact shadow.

    The result is opaque: a cut-out's transparency is filled with white through its own alpha.
    """
    product, matte, subject = product_matte(image, mask, feather_px=feather_px)
    bg = np.broadcast_to(WHITE, product.shape).astype(np.float32)
    if shadow:
        bg = bg * (1.0 - contact_shadow(subject, shadow_opacity))[..., None]
    return composite(product, to_uint8(bg), matte)


def gradient(
    shape: tuple[int, int], c0: tuple[int, int, int], c1: tuple[int, int, int], direction: str
) -> np.ndarray:
    """Two-colour gradient: top->bottom, left->right, or centre->corners."""
    h, w = shape
    if direction == "vertical":
        t = np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w))
    elif direction == "horizontal":
        t = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32)[None, :], (h, w))
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((xx - (w - 1) / 2) / max(w / 2, 1), (yy - (h - 1) / 2) / max(h / 2, 1))
        t = np.clip(r / np.sqrt(2), 0, 1)
    a, b = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
    return to_uint8(a + (b - a) * t[..., None])


def cover(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize to cover (h, w) preserving aspect ratio, then centre-crop."""
    h, w = shape
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    nw, nh = max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale)))
    big = resize(image, (nw, nh))
    y, x = (nh - h) // 2, (nw - w) // 2
    return big[y : y + h, x : x + w]


@engine_op(
    "replace_background",
    mode=p_choice("color", "color", "gradient", "image"),
    color=p_hex("#FFFFFF"),
    color_to=p_hex("#DDE6F0"),
    direction=p_choice("vertical", "vertical", "horizontal", "radial"),
)
def replace_background(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    mode: str,
    color: str,
    color_to: str,
    direction: str,
) -> np.ndarray:
    """Keep the product, swap the backdrop for a colour, a gradient or references[0] (the result is opaque)."""
    h, w = image.shape[:2]
    if mode == "image":
        if not references:
            raise OpParamError(
                "references", "mode=image needs a background image in references[0]", op="replace_background"
            )
        bg = cover(flatten(references[0]), (h, w))
    elif mode == "gradient":
        bg = gradient((h, w), hex_to_rgb(color), hex_to_rgb(color_to), direction)
    else:
        bg = np.broadcast_to(np.asarray(hex_to_rgb(color), np.uint8), (h, w, 3))
    product, matte, _ = product_matte(image, mask)
    return composite(product, bg, matte)
