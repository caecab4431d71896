"""The product's matte: how opaque the product is at every pixel, and its colours free of the backdrop.

Every op that puts the product on a new backdrop (white, a colour, a picture, transparency) composites
through this one matte, so a cut-out's own alpha and a photo's segmentation are treated alike.

For a photo, the segmentation decides what is product, and closed-form matting (Levin, Lischinski
and Weiss, "A Closed-Form Solution to Natural Image Matting", PAMI 2008, as implemented by the
``pymatting`` package) decides how opaque its edge is, in a narrow band the segmentation's mask gives
as a trimap: anti-aliasing, soft focus and thin strands keep their own partial opacity instead of a
binary cut. The soft edge's colours are then un-mixed from the backdrop, whose colour the segmentation
already modelled, so no halo of the old backdrop follows the product onto its new one.

Tried and left out: a wide trimap (the product's whole convex hull unknown) recovers more of a silver
ribbon on a grey sweep, but also fills mug handles and swallows cast shadows on the procedural samples.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._common import dilate, erode, feathered_alpha, split_alpha, to_uint8, with_alpha
from .subject import (
    alpha_subject,
    border_band,
    checked_work_copy,
    fit_background,
    no_product,
    segment_small,
    upsample_mask,
)

#: the trimap around the segmentation's edge (full-resolution pixels): certain product inside, certain
#: backdrop outside, a band the matting decides between
CORE_ERODE_PX = 2
BAND_DILATE_PX = 3
#: matte values this close to 0 or 1 are snapped: a whisper of opacity would dirty a pure white backdrop
SNAP = 0.05


def refine_edge(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Closed-form matting of the band around the mask's edge: the product's soft matte (float32 0..1).

    The band is narrow, so the segmentation decides what is product and the matting how opaque its edge
    is: anti-aliasing, soft focus and thin strands the binary mask would have cut or thickened.
    """
    from pymatting import estimate_alpha_cf

    core = erode(mask, CORE_ERODE_PX)
    band = dilate(mask, BAND_DILATE_PX) & ~core
    alpha = core.astype(np.float32)
    if not band.any() or not core.any():
        return mask.astype(np.float32)
    h, w = mask.shape
    rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
    y0, y1, x0, x1 = max(0, rows[0] - 2), min(h, rows[-1] + 3), max(0, cols[0] - 2), min(w, cols[-1] + 3)
    trimap = np.where(core, 1.0, np.where(band, 0.5, 0.0))[y0:y1, x0:x1]
    crop = image[y0:y1, x0:x1].astype(np.float64) / 255.0
    solved = estimate_alpha_cf(crop, trimap, cg_kwargs={"maxiter": 300}).astype(np.float32)
    alpha[y0:y1, x0:x1] = np.where(trimap == 0.5, solved, alpha[y0:y1, x0:x1])
    alpha[alpha < SNAP] = 0.0
    alpha[alpha > 1.0 - SNAP] = 1.0
    return alpha


def unmix(image: np.ndarray, alpha: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The product's own colours under a soft edge: the compositing equation I = aF + (1 - a)B solved for F
    with the modelled backdrop B, so the old backdrop's colour does not travel with the product."""
    edge = (alpha > 0.0) & (alpha < 1.0)
    out = image.copy()
    if edge.any():
        a = alpha[edge][:, None]
        out[edge] = to_uint8((image[edge].astype(np.float32) - (1.0 - a) * backdrop[edge]) / a)
    return out


def photo_matte(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(un-mixed colours, matte, mask) of an opaque product photo.

    :raises NoSubjectError: a scene (no plain backdrop) or no product.
    """
    small, scale = checked_work_copy(image)
    mask = segment_small(small)
    if not mask.any():
        raise no_product()
    model = fit_background(small, border_band(*small.shape[:2]))
    alpha = refine_edge(image, upsample_mask(image, mask, scale))
    h, w = image.shape[:2]
    backdrop = cv2.resize(model.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return unmix(image, alpha, backdrop), alpha, alpha >= 0.5


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
        return photo_matte(rgb)
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
