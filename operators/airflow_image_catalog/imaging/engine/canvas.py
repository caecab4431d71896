"""fit_canvas: marketplace framing (exact size, product fill, pure padding) without cropping the product."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._common import bbox, hex_to_rgb, resize_image
from .ops import engine_op, p_float, p_hex, p_int


def product_box(image: np.ndarray, mask: np.ndarray | None, background: np.ndarray, tolerance: int):
    """Bounding box of the product: the mask's, a cut-out's every visible pixel, else pixels that differ
    from the background. Everything inside is kept, so a cut-out's faintest edge is never cropped."""
    if mask is not None:
        found = mask
    elif image.shape[-1] == 4:
        found = image[..., 3] > 0
    else:
        diff = np.abs(image.astype(np.int16) - background.astype(np.int16))
        found = (diff > tolerance).any(axis=-1)
    return bbox(found)


@engine_op(
    "fit_canvas",
    width=p_int(2000, 16, 10000),
    height=p_int(2000, 16, 10000),
    product_fill=p_float(0.85, 0.0, 1.0),
    background=p_hex("#FFFFFF"),
    tolerance=p_int(8, 0, 64),
)
def fit_canvas(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    references: Sequence[np.ndarray] = (),
    width: int,
    height: int,
    product_fill: float,
    background: str,
    tolerance: int,
) -> np.ndarray:
    """Scale the product to fill ``product_fill`` of a width x height canvas, centred, padded.

    The product is scaled to fit, never cropped, however it touches the source's edges. A cut-out
    (RGBA) stays one: it is resampled premultiplied and padded with transparency.
    """
    bg = np.asarray(hex_to_rgb(background), np.uint8)
    h, w = image.shape[:2]
    box = product_box(image, mask, bg, tolerance) if product_fill > 0 else None
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    crop = image[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    fit = min(width / cw, height / ch)
    scale = fit * product_fill if product_fill > 0 else fit
    nw = min(width, max(1, int(round(cw * scale))))
    nh = min(height, max(1, int(round(ch * scale))))
    canvas = np.empty((height, width, image.shape[2]), np.uint8)
    canvas[..., :3] = bg
    canvas[..., 3:] = 0  # a cut-out's padding is transparent
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[top : top + nh, left : left + nw] = resize_image(crop, (nw, nh))
    return canvas
