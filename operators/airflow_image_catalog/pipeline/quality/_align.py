"""Geometry for the quality gate: product regions and source -> edited alignment for reframed edits.

A reframed edit (``white_background`` + ``fit_canvas``, ``replace_background``) cuts the
product out and scales it onto a new canvas, so source and edited pixels only line up
after the source product's bounding box is mapped onto the edited one. Everything here
is weight-free and fast: no GrabCut, the source is segmented on a <= 160 px copy with the
engine's polynomial backdrop model and only the four bounding-box edges are refined at
full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from airflow_image_catalog.imaging.engine._common import bbox, dilate, resize
from airflow_image_catalog.imaging.engine.subject import backdrop_deviation, border_band, fit_background

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, like the engine's ``bbox``

#: a canvas pixel belongs to the product when any channel differs from the background by more than this
CANVAS_TOLERANCE = 8
#: the background of a canvas is everything this many px away from the product (anti-aliased edge, feather)
BACKGROUND_MARGIN_PX = 3
#: longest side of the copy the source segmentation runs on
SEGMENT_SIDE = 160
#: threshold factor for the full-resolution edge refinement (see ``_is_product``)
EDGE_SENSITIVITY = 0.35


def canvas_foreground(
    image: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), tolerance: int = CANVAS_TOLERANCE
) -> np.ndarray:
    """Product region of a flat-colour canvas: pixels off the background colour, specks opened.

    Holes are *not* filled: an enclosed opening (a mug's handle) shows the new background,
    which must neither be compared with the old backdrop nor escape the purity check.
    """
    off = cv2.bitwise_not(near_colour(image, background, tolerance))
    return cv2.morphologyEx(off, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).view(bool)


def near_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int) -> np.ndarray:
    """uint8 0/255 map of pixels whose every channel is within ``tolerance`` of ``colour`` (cv2.inRange)."""
    c = np.asarray(colour, np.int32)
    lo, hi = np.clip(c - tolerance, 0, 255), np.clip(c + tolerance, 0, 255)
    return cv2.inRange(np.ascontiguousarray(image), lo.astype(np.uint8), hi.astype(np.uint8))


def _is_product(chroma: np.ndarray, ratio: np.ndarray, model: np.ndarray, noise: float) -> np.ndarray:
    """Clearly not backdrop: other chroma, far darker than any shadow, or clearly brighter.

    (A more sensitive threshold that would catch the anti-aliased rim also catches the hot-spot
    and shadow edges: measured worse on the samples.)
    """
    excess = (ratio - 1.0) * np.sqrt(np.einsum("...c,...c->...", model, model))
    return (chroma > max(6.0 * noise, 16.0)) | (ratio < 0.3) | ((ratio > 1.15) & (excess > 30.0))


def _poly_model(image: np.ndarray, band: np.ndarray) -> np.ndarray:
    return fit_background(image, band).astype(np.float32)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _refine_edges(
    image: np.ndarray, coarse: Box, scale: float, coef_model: tuple[np.ndarray, np.ndarray], noise: float
) -> Box:
    """Move each coarse bbox edge to the first full-resolution row/column with product pixels nearby."""
    h, w = image.shape[:2]
    y0, y1, x0, x1 = coarse
    m = int(np.ceil(2.0 / scale)) + 2
    small_model, small_shape = coef_model

    def edge(ys: slice, xs: slice, axis: int, first: bool, fallback: int, offset: int) -> int:
        strip = image[ys, xs]
        if strip.size == 0:
            return fallback
        # backdrop model of the strip: upsample the low-res model over the same area
        sy, sx = small_shape[0] / h, small_shape[1] / w
        mod = cv2.resize(
            small_model[
                int(ys.start * sy) : int(np.ceil(ys.stop * sy)) + 1,
                int(xs.start * sx) : int(np.ceil(xs.stop * sx)) + 1,
            ],
            (strip.shape[1], strip.shape[0]),
            interpolation=cv2.INTER_LINEAR,
        )
        chroma, ratio = backdrop_deviation(strip, mod)
        hit = _is_product(chroma, ratio, mod, noise)
        hit = cv2.morphologyEx(hit.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).any(axis=axis)
        idx = np.flatnonzero(hit)
        if idx.size == 0:
            return fallback
        return offset + (int(idx[0]) if first else int(idx[-1]) + 1)

    ty0, ty1 = max(0, y0 - m), min(h, y0 + m)
    by0, by1 = max(0, y1 - m), min(h, y1 + m)
    lx0, lx1 = max(0, x0 - m), min(w, x0 + m)
    rx0, rx1 = max(0, x1 - m), min(w, x1 + m)
    cols, rows = slice(max(0, x0 - m), min(w, x1 + m)), slice(max(0, y0 - m), min(h, y1 + m))
    ny0 = edge(slice(ty0, ty1), cols, 1, True, y0, ty0)
    ny1 = edge(slice(by0, by1), cols, 1, False, y1, by0)
    nx0 = edge(rows, slice(lx0, lx1), 0, True, x0, lx0)
    nx1 = edge(rows, slice(rx0, rx1), 0, False, x1, rx0)
    if ny1 <= ny0 or nx1 <= nx0:
        return coarse
    return ny0, ny1, nx0, nx1


def _small_foreground(source: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, float]:
    """The product on a <= ``SEGMENT_SIDE`` copy: mask, scale, backdrop model and noise level."""
    h, w = source.shape[:2]
    scale = min(1.0, SEGMENT_SIDE / max(h, w))
    sw, sh = max(8, int(round(w * scale))), max(8, int(round(h * scale)))
    small = cv2.resize(source, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else source
    band = border_band(sh, sw)
    model = _poly_model(small, band)
    chroma, ratio = backdrop_deviation(small, model)
    noise = float(np.median(chroma[band])) + 1.0
    fg = _is_product(chroma, ratio, model, noise) & ~band
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return _largest_component(fg), scale, model, noise


def source_product_mask(source: np.ndarray) -> np.ndarray | None:
    """The product's pixels in a catalog photo (fast, low-res segmentation scaled up), or None."""
    fg = _small_foreground(source)[0]
    if not fg.any():
        return None
    h, w = source.shape[:2]
    return cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def source_product_box(source: np.ndarray) -> Box | None:
    """Bounding box of the product in a catalog photo on a smooth backdrop (fast, no GrabCut).

    Segments a <= 160 px copy (backdrop polynomial fitted to the border, shadows explained
    as darker backdrop, morphology, largest component), then refines the four edges at
    full resolution so the alignment error stays ~1 px instead of one low-res pixel.
    """
    h, w = source.shape[:2]
    fg, scale, model, noise = _small_foreground(source)
    sh, sw = fg.shape
    box = bbox(fg)
    if box is None:
        return None
    sy, sx = h / sh, w / sw
    coarse = (
        int(np.floor(box[0] * sy)),
        int(np.ceil(box[1] * sy)),
        int(np.floor(box[2] * sx)),
        int(np.ceil(box[3] * sx)),
    )
    return _refine_edges(source, coarse, scale, (model, (sh, sw)), noise)


@dataclass(frozen=True)
class Alignment:
    """Source pixels mapped into the edited canvas, plus the regions the gate compares.

    ``source_aligned`` has the edited image's shape: the source product crop resized into
    the edited product box, the canvas background colour elsewhere.
    """

    source_aligned: np.ndarray
    product_region: np.ndarray
    background_region: np.ndarray
    source_bbox: Box | None
    edited_bbox: Box | None


def align_reframed(
    source: np.ndarray,
    edited: np.ndarray,
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    source_box: Box | None = None,
) -> Alignment:
    """Map the source product onto the reframed edit: source bbox crop resized into the edited bbox.

    ``source_box`` (y0, y1, x0, x1) may come from a slower, better segmentation (the gate passes
    the engine's); without it the fast :func:`source_product_box` finds it.
    """
    region = canvas_foreground(edited, background)
    edited_box = bbox(region)
    source_box = source_box or source_product_box(source)
    aligned = np.empty_like(edited)
    aligned[:] = np.asarray(background, np.uint8)
    if edited_box is not None and source_box is not None:
        ey0, ey1, ex0, ex1 = edited_box
        sy0, sy1, sx0, sx1 = source_box
        aligned[ey0:ey1, ex0:ex1] = resize(source[sy0:sy1, sx0:sx1], (ex1 - ex0, ey1 - ey0))
    return Alignment(
        source_aligned=aligned,
        product_region=region,
        background_region=~dilate(region, BACKGROUND_MARGIN_PX),
        source_bbox=source_box,
        edited_bbox=edited_box,
    )
