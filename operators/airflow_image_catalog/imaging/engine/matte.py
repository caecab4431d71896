"""The product's matte: how opaque the product is at every pixel, and its colours free of the backdrop.

Every op that puts the product on a new backdrop (white, a colour, a picture, transparency) composites
through this one matte, so a cut-out's own alpha and a photo's segmentation are treated alike.

For a photo the matte is the segmentation's mask (whose edge closed-form matting decided, see
``subject.refine_edge``), kept pixel for pixel, and a rim ramping outwards over ``feather_px`` whose
colours are the product's nearby pixels: no halo of the old backdrop follows the product onto its
new one.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._common import feathered_alpha, split_alpha, to_uint8, with_alpha
from .subject import alpha_subject, find_subject


def edge_colours(image: np.ndarray, alpha: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The product's colours under its matte: inside the mask the photo's own pixels (kept exactly, as the
    quality gate checks), on the rim outside it the colour of the product's nearby pixels, so the rim
    carries the product's colour and none of the old backdrop's."""
    faint = (alpha > 0.0) & ~mask
    out = image.copy()
    if faint.any():
        solid = mask.astype(np.float32)
        weights = cv2.GaussianBlur(solid, (0, 0), 2.0)
        spread = cv2.GaussianBlur(image.astype(np.float32) * solid[..., None], (0, 0), 2.0)
        near = spread[faint] / np.maximum(weights[faint], 1e-3)[:, None]
        out[faint] = to_uint8(near)
    return out


def photo_matte(image: np.ndarray, feather_px: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colours, matte, mask) of an opaque product photo: the segmentation (its edge matted), a rim
    ramping outwards over ``feather_px`` in the product's own colour.

    :raises NoSubjectError: a scene (no plain backdrop) or no product.
    """
    mask = find_subject(image)
    alpha = feathered_alpha(mask, feather_px)
    return edge_colours(image, alpha, mask), alpha, mask


def product_matte(
    image: np.ndarray, mask: np.ndarray | None = None, *, feather_px: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(product colours RGB, matte float32 0..1, product mask bool) of one image.

    A cut-out (RGBA) is its own matte: its alpha, limited to ``mask`` when one is given. A photo's matte
    comes from the segmentation refined by matting (:func:`photo_matte`); a caller's ``mask`` is taken
    as it is, ramped outwards over ``feather_px``.
    """
    rgb, alpha = split_alpha(image)
    if alpha is not None:
        alpha_subject(image)  # refuses an image transparent all over
        matte = alpha if mask is None else alpha * mask
        return rgb, matte, matte >= 0.5
    if mask is None:
        return photo_matte(rgb, feather_px)
    subject = mask.astype(bool)
    return rgb, feathered_alpha(subject, feather_px), subject


def cut_out(image: np.ndarray) -> np.ndarray:
    """The product alone, as an RGBA cut-out (a cut-out is returned as it is).

    :raises NoSubjectError: a photo without a plain backdrop (a scene) or without a product.
    """
    if image.shape[-1] == 4:
        return image
    product, matte, _ = product_matte(image)
    return with_alpha(product, matte)
