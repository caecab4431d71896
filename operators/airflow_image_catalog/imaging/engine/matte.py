"""The product's matte: how opaque the product is at every pixel, and its colours free of the backdrop.

Every op that puts the product on a new backdrop (white, a colour, a picture, transparency) composites
through this one matte, so a cut-out's own alpha and a photo's segmentation are treated alike.
"""

from __future__ import annotations

import numpy as np

from ._common import feathered_alpha, split_alpha, with_alpha
from .subject import alpha_subject, resolve_subject


def product_matte(
    image: np.ndarray, mask: np.ndarray | None = None, *, feather_px: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(product colours RGB, matte float32 0..1, product mask bool) of one image.

    A cut-out (RGBA) is its own matte: its alpha, limited to ``mask`` when one is given. A photo's matte
    comes from the segmentation (or the caller's ``mask``), ramped outwards over ``feather_px``.
    """
    rgb, alpha = split_alpha(image)
    if alpha is not None:
        alpha_subject(image)  # refuses an image transparent all over
        matte = alpha if mask is None else alpha * mask
        return rgb, matte, matte >= 0.5
    subject = resolve_subject(image, mask)
    return rgb, feathered_alpha(subject, feather_px), subject


def cut_out(image: np.ndarray) -> np.ndarray:
    """The product alone, as an RGBA cut-out (a cut-out is returned as it is).

    :raises NoSubjectError: a photo without a plain backdrop (a scene) or without a product.
    """
    if image.shape[-1] == 4:
        return image
    product, matte, _ = product_matte(image)
    return with_alpha(product, matte)
