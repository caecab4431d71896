"""The checks of a reframed edit (product cut out onto a new canvas), judged without the editor.

The gate decides the source product itself (``_product``), finds where it went (``_align``),
and then asks of the edit, each on its own terms:

- canvas: every pixel outside the aligned product (and the few pixels of anti-aliasing and
  JPEG ringing around it) is exactly the canvas colour; what is not is a background fault with
  a place (a corner, an edge, around the product, the whole canvas) and a colour;
- completeness: the edit contains the whole source product: no pixel of it turned into canvas
  (a lost part, a hole, an edge clipped flat) or fell off the canvas;
- identity: same orientation, proportions and outline, one copy, the same colours;
- overlays: marks the edit added, on the canvas (strong-contrast marks, text, frames) or on the
  product (edges the source does not have there), found weight-free;
- detail: fine-detail energy of the product compared at the source's own resolution in its
  most detailed tiles (a 2000 px edit that is a 4x upscale shows it there, not at 512 px);
  contrast, clipping, posterisation; the product's printed text (found by classical
  text-region detection) kept.

Two grids keep it cheap: the canvas checks run on the edit as decoded (every pixel, at the
DCT scale ``decode_pair`` chose), the product comparisons on a crop of the product resampled
to the source's own resolution (never upsampled, so no detail is invented or hidden).
One flat row of numbers and short location strings; ``reasons`` turns failed checks into
sentences. Pure numpy / OpenCV; no Airflow, no weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from airflow_image_catalog.imaging.engine._common import bbox
from airflow_image_catalog.pipeline.quality._align import Fit, fit_source, to_full
from airflow_image_catalog.pipeline.quality._decode import Decoded, decode
from airflow_image_catalog.pipeline.quality._product import (
    ALPHA_SEEN,
    WORK_SIDE,
    SourceProduct,
    canvas_product,
    channel_max,
    product_masks,
    shrink,
)

#: a canvas pixel is the canvas colour when every channel is within this (a flat block of another colour may
#: decode a level off; on white a JPEG gets none: ``_purity_tolerance``)
CANVAS_TOLERANCE = 1
#: residual error of the fit, in small-copy pixels (the checks allow it around the product's outline)
FIT_TOLERANCE_SMALL = 1.0
#: around the product, JPEG ringing (one 8x8 / 16x16 chroma block) is not a background fault
RINGING_PX = 12
#: a background pixel off the canvas by more than this is a strong mark (text, logo, frame), not a tint
MARK_LEVELS = 40
#: a rim pixel off the canvas by more than this counts towards a halo (JPEG ringing beside an edge stays below)
HALO_LEVELS = 4
#: a rim pixel further off the canvas than this is no light halo (the product itself, a fit a few pixels off)
HALO_LIGHT = 64
#: the product's own soft edge fades over this many source pixels (an enlarged source's over more edit px)
HALO_EDGE_SOURCE_PX = 2.0
#: the outline band the kept-backdrop check reads (share of the product's longest side), and the colour model's
#: bins per channel and odds (a colour is the backdrop's when it is this many times likelier there than on the product,
#: and at least ``BACKDROP_SEEN`` of the backdrop has it)
KEPT_BAND, COLOUR_BINS, BACKDROP_ODDS, BACKDROP_SEEN = 0.015, 16, 4.0, 1e-3
#: the texture-scale check: enlargements tried per axis (beyond the outline's), the share of the product's
#: middle it compares, and the evidence it needs (the outline's scale correlates at most this share of the best)
TEXTURE_SCALES = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25)
TEXTURE_CORE, TEXTURE_EVIDENCE, TEXTURE_MIN_CORRELATION = 0.6, 0.4, 0.25
#: the texture it compares: detail finer than this many small-copy px
TEXTURE_FINE = 3.0
#: the backdrop in another light is at most this much brighter than the backdrop model says (a handle
#: opening lit 1.2x); a pixel of its chromaticity brighter than that is a neutral product on a neutral backdrop
BACKDROP_LIGHT = 1.6
#: a rim pixel with a Sobel gradient below this lies on a plateau of even tone
HALO_FLAT = 24.0
#: a rim that fades (its even-toned part under ``RIM_FADES`` of it) round a product whose inner edges are at
#: least ``RIM_SOFT_EDGES`` times as wide as the source's is the product's own outline blurred, not a halo.
#: Tuning half at 1000 px, the rims the halo checks quarantine: blurred or upscaled 0.0..1.2 % even-toned,
#: painted halos 4.4 % (a cut-out's thin halo) to 100 % (RIM_FADES: the geometric middle, rounded down); the
#: halos and other canvas faults under 25 % even-toned have inner edges 1.0..1.024x, the soft coin blurred or
#: upscaled 1.051..1.089x (RIM_SOFT_EDGES; clean edits reach 1.08x, so this is no evidence on its own)
RIM_FADES, RIM_SOFT_EDGES = 0.02, 1.04
#: a cut-out's alpha below this cannot put a pixel more than ``HALO_LEVELS`` off the canvas colour
ALPHA_CLEAR = 4
#: an edit pixel this far outside the source's local range is painted over; above this share, a global change
OVERPAINT_LEVELS, OVERPAINT_GLOBAL = 12, 0.5
#: a source pixel darker than its backdrop model by this many levels (and this many times its noise) is a shade of
#: it: a shadow or a shaded product part
SHADE_LEVELS, SHADE_NOISE = 6.0, 3.0
#: an edit pixel within this many levels of the source's (every channel) is the source's own, kept
SHADE_KEPT_LEVELS = 14
#: kept pixels this many fit residuals from a kept shade go with it (its highlights)
SHADE_GROW = 3
#: a cut-out pixel at least this opaque shows the source's own colour whatever the compositing
OPAQUE = 250
#: printed text is compared by its letter strokes: detail finer than this share of the line height
LETTER_BAND = 0.25
#: tiles the detail check compares, their side at the comparison scale, and its band: what is finer than this (px)
DETAIL_TILES, DETAIL_TILE, DETAIL_BAND = 8, 32, 1.0
#: the detail-balance check's finer and coarser cut (comparison px): what is finer than each, in edit and source
BALANCE_FINE, BALANCE_COARSE = 0.6, 2.0
#: the edge-width check: half window (crop px), least contrast of an edge (levels), fewest edge points
EDGE_REACH, EDGE_CONTRAST, EDGE_MIN_POINTS = 3, 40.0, 200
#: the outline-softness check: half window (crop px; a blur of 2 source px fits in it), fewest outline points, and
#: the width a crisp cut's outline reads on the comparison crop (a Gaussian matte of 0.7-1 source px and the
#: resampling: 2.0..2.8 on the tuning half's clean edits and the engine's)
OUTLINE_REACH, OUTLINE_MIN_POINTS, CRISP_OUTLINE = 4, 50, 2.75
#: longest side of the crop the product comparisons run on
COMPARE_SIDE = 512
#: longest side of the crop blockiness is measured on (block artefacts are everywhere or nowhere)
BLOCK_CROP = 768

REFRAME_KEYS = (
    "orientation", "fit_iou", "aspect_change", "rotation_deg", "product_copies", "product_coverage",
    "missing_piece", "hole_piece", "hole_where", "missing_kind", "missing_where", "bg_off_share", "bg_largest_mark", "bg_where", "bg_colour",
    "edge_halo_px", "edge_halo", "edge_halo_flat", "edge_halo_cutout", "outline_rim", "outline_rim_cutout", "backdrop_kept", "backdrop_kept_colour",
    "texture_clipped", "texture_scale", "canvas_marks", "canvas_marks_where", "product_marks", "product_marks_where",
    "product_overpainted", "product_overpainted_where",
    "detail_ratio", "fine_detail_balance", "edge_width_ratio", "outline_softness", "outline_width", "contrast_ratio", "clipped_gain", "tone_levels_ratio", "product_fill", "delta_e_product",
    "product_ssim", "colour_cast", "text_lines", "text_ssim",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# where: a place in words


def place_of(box: tuple[float, float, float, float], frame: tuple[float, float, float, float]) -> str:
    """'top left', 'bottom', 'centre', ... of a box's centre inside a frame (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    fy0, fy1, fx0, fx1 = frame
    cy = ((y0 + y1) / 2 - fy0) / max(fy1 - fy0, 1e-6)
    cx = ((x0 + x1) / 2 - fx0) / max(fx1 - fx0, 1e-6)
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    return " ".join(p for p in (vertical, horizontal) if p) or "centre"


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask.copy()
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.erode(mask.view(np.uint8), disc, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def _off(image: np.ndarray, colour: tuple[int, int, int], levels: int) -> np.ndarray:
    """Pixels with some channel more than ``levels`` away from ``colour``."""
    c = np.asarray(colour, np.int32)
    lo, hi = np.clip(c - levels, 0, 255).astype(np.uint8), np.clip(c + levels, 0, 255).astype(np.uint8)
    return cv2.inRange(image, lo, hi) == 0


def _open(mask: np.ndarray, px: int = 2) -> np.ndarray:
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((px, px), np.uint8)).view(bool)


def _sides_where(mask: np.ndarray) -> str:
    """Which canvas edges a mark runs along ('along the top and left edges'), '' if none."""
    h, w = mask.shape
    band = max(2, min(h, w) // 40)
    sides = [name for name, covered in (
        ("top", mask[:band].any(axis=0)), ("bottom", mask[-band:].any(axis=0)), ("left", mask[:, :band].any(axis=1)),
        ("right", mask[:, -band:].any(axis=1))) if np.count_nonzero(covered) > 0.6 * covered.size]  # fmt: skip
    if not sides:
        return ""
    return "along all four edges" if len(sides) == 4 else f"along the {' and '.join(sides)} edge{'s' * (len(sides) > 1)}"


def _marks_where(mask: np.ndarray, frame: tuple[float, float, float, float], what: str) -> tuple[float, str]:
    """Largest connected piece of ``mask`` (share of frame area) and where it is, in words."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 1:
        return 0.0, ""
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = stats[i]
    frame_area = (frame[1] - frame[0]) * (frame[3] - frame[2])
    return float(area / frame_area), f"{place_of((y, y + bh, x, x + bw), frame)} of the {what}"


# ---------------------------------------------------------------------------------------------
# the source as the gate sees it


@dataclass(frozen=True)
class SourceView:
    """A decoded source, its small copy and the gate's own product masks on it (computed once)."""

    decoded: Decoded
    small: np.ndarray
    scale: float  # small / full
    masks: SourceProduct

    @classmethod
    def of(cls, decoded: Decoded) -> SourceView:
        small, scale = shrink(decoded.rgb)
        alpha_small = None if decoded.alpha is None else shrink(decoded.alpha)[0]
        return cls(decoded, small, scale, product_masks(small, alpha_small))

    def product_extent(self) -> float:
        """Longest side of the product's bounding box in source pixels."""
        box = bbox(self.masks.mask)
        if box is None:
            return float(max(self.decoded.rgb.shape[:2]))
        return max(box[1] - box[0], box[3] - box[2]) / self.scale


@dataclass(frozen=True)
class FullMasks:
    """The gate's source product at full size: ``sure`` pixels are product, ``maybe`` may be."""

    sure: np.ndarray
    maybe: np.ndarray


def source_product(image: np.ndarray, alpha: np.ndarray | None = None) -> FullMasks:
    """The source product at the image's own size (for in-place edits: what a subject mask covers)."""
    if alpha is not None:
        return FullMasks(alpha >= 128, alpha >= ALPHA_SEEN)
    view = SourceView.of(Decoded(image, None, 1, image.shape[1::-1]))
    h, w = image.shape[:2]
    unsure = int(np.ceil(1.5 / view.scale))

    def up(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.view(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR) >= 128

    maybe = up(view.masks.maybe)
    grown = cv2.dilate(maybe.view(np.uint8), np.ones((2 * unsure + 1,) * 2, np.uint8)).view(bool)
    return FullMasks(_erode(up(view.masks.sure), unsure), grown)


def decode_pair(source_bytes: bytes, edited_bytes: bytes, *, reduce: bool = True) -> tuple[SourceView, Decoded]:
    """Decode source and edit; a JPEG edit (``reduce``) at the smallest DCT scale that keeps the source's detail.

    The source product's longest side in source pixels bounds the detail any faithful edit can
    hold; the edit is decoded so that its product (at the usual 85 % fill) is at least that long:
    a 2000 px marketplace square of an 800 px product decodes at 1000 px, for half the cost.
    """
    source = SourceView.of(decode(source_bytes))
    if not reduce:
        return source, decode(edited_bytes)
    return source, decode(edited_bytes, min_side=int(source.product_extent() / 0.85))


# ---------------------------------------------------------------------------------------------
# the fit, and the two grids


@dataclass(frozen=True)
class Aligned:
    """The source fitted into the edit: the fit, and the source's "maybe product" mask on the edit's grid."""

    fit: Fit
    small_matrix: np.ndarray  # source small copy -> edit small copy (3x3)
    out_small: np.ndarray
    out_mask_small: np.ndarray
    out_scale: float
    product: np.ndarray  # on the edit's decoded grid
    maybe: np.ndarray


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at the points (x, y): (N, channels)."""
    n = len(x)
    width = 1024
    rows = -(-n // width)
    mx, my = np.zeros(rows * width, np.float32), np.zeros(rows * width, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(image, mx.reshape(rows, width), my.reshape(rows, width), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * width, -1)[:n]


def _to_source(matrix: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source full-size coordinates (x, y) of the grid pixels (ys, xs), ``matrix`` (2x3) mapping source to grid."""
    inverse = np.linalg.inv(np.vstack([matrix[:2], [0, 0, 1]]))
    src_x = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]).astype(np.float32)
    src_y = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]).astype(np.float32)
    return src_x, src_y


def _against_backdrop(view: SourceView, backdrop, matrix: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """The source's own pixels at the grid pixels (ys, xs), at full size, and how they depart from the gate's
    backdrop model there: (pixels, ``Deviation``)."""
    from airflow_image_catalog.pipeline.quality._product import Backdrop, Deviation

    src_x, src_y = _to_source(matrix, ys, xs)
    pixels = _sample(view.decoded.rgb, src_x, src_y)
    model = _sample(backdrop.model, src_x * view.scale, src_y * view.scale)
    return pixels, Deviation.of(pixels, Backdrop(model, backdrop.noise))


@dataclass(frozen=True)
class GridMasks:
    """The source product on some grid: is product, certainly product, may be product."""

    product: np.ndarray
    sure: np.ndarray
    maybe: np.ndarray


def masks_on_grid(view: SourceView, matrix: np.ndarray, shape: tuple[int, int]) -> GridMasks:
    """The gate's source product carried by ``matrix`` (2x3, source full px -> grid px) onto a grid.

    From the alpha channel when the source has one (exact). Otherwise the small masks are warped
    and their outline, where the warp leaves a pixel undecided, is decided again from the source's
    own pixels there against the same backdrop model (one source pixel of precision instead of one
    small-copy pixel: what lets the halo and rim checks look right next to the product).
    """
    alpha = view.decoded.alpha
    if alpha is not None:
        warped = cv2.warpAffine(alpha, matrix[:2], (shape[1], shape[0]), flags=cv2.INTER_LINEAR)
        product = warped >= 128
        return GridMasks(product, product, warped >= ALPHA_SEEN)
    from airflow_image_catalog.pipeline.quality._product import LOOSE, SURE

    small_to = np.vstack([matrix[:2], [0, 0, 1]]) @ np.diag([1 / view.scale, 1 / view.scale, 1.0])
    size = (shape[1], shape[0])

    def soft(mask: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(mask.view(np.uint8) * np.uint8(255), small_to[:2], size, flags=cv2.INTER_LINEAR)

    soft_mask, soft_sure, soft_maybe = soft(view.masks.mask), soft(view.masks.sure), soft(view.masks.maybe)
    product, sure, maybe = soft_mask >= 128, soft_sure >= 128, soft_maybe >= 128
    backdrop = view.masks.backdrop
    band = ((soft_mask > 0) & (soft_mask < 255)) | ((soft_sure > 0) & (soft_sure < 255))
    if backdrop is None or not band.any():
        return GridMasks(product, sure, maybe | product)
    band = cv2.dilate(band.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    ys, xs = np.nonzero(band)
    _, deviation = _against_backdrop(view, backdrop, matrix, ys, xs)
    near_mask, near_sure = soft_mask[ys, xs] > 0, soft_sure[ys, xs] > 0
    product[ys, xs] = deviation.product() & near_mask
    sure[ys, xs] = deviation.product(SURE) & near_sure
    maybe[ys, xs] |= deviation.product(LOOSE) & (soft_maybe[ys, xs] > 0)
    product = _open(product, 2) | (soft_mask == 255)
    return GridMasks(product, _open(sure, 2) & product, maybe | product)


def align(view: SourceView, edited: Decoded, canvas: tuple[int, int, int] = (255, 255, 255)) -> Aligned | None:
    """Fit the gate's source product into the edit (None: the gate found no product in the source)."""
    out_small, out_scale = shrink(edited.rgb)
    out_mask_s = canvas_product(out_small, canvas)
    if not view.masks.mask.any():
        return None
    found = fit_source(view.masks.mask, view.small, out_mask_s, out_small)
    if found is None:
        return None
    small_matrix, orientation, iou = found
    fit = to_full(small_matrix, view.scale, out_scale, orientation, iou)
    grid = masks_on_grid(view, fit.matrix, edited.rgb.shape[:2])
    return Aligned(fit, small_matrix, out_small, out_mask_s, out_scale, grid.product, grid.maybe)


def source_on_grid(view: SourceView, matrix: np.ndarray, shape: tuple[int, int], canvas) -> np.ndarray:
    """The source warped by ``matrix`` (2x3, source full px -> grid px), area-shrunk first when it shrinks."""
    src = view.decoded.rgb
    matrix = matrix.copy()
    shrink_by = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if shrink_by < 0.7:
        factor = shrink_by / 0.9
        size = (max(1, round(src.shape[1] * factor)), max(1, round(src.shape[0] * factor)))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        matrix[:, :2] /= factor
    return cv2.warpAffine(src, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(c) for c in canvas))


def on_edit(view: SourceView, fitted: Aligned, edited: Decoded, canvas=(255, 255, 255)) -> tuple[np.ndarray, np.ndarray]:
    """(source pixels, source product) on the edit's decoded grid, for comparisons at the edit's size."""
    return source_on_grid(view, fitted.fit.matrix, edited.rgb.shape[:2], canvas), fitted.product


# ---------------------------------------------------------------------------------------------
# the row


def measure_reframe(source: Decoded | SourceView, edited: Decoded, *, canvas: tuple[int, int, int] = (255, 255, 255),
                    timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Every reframe check for one edit; keys ``REFRAME_KEYS`` plus blockiness (None where a check could not run)."""
    import time

    started = time.perf_counter()
    view = source if isinstance(source, SourceView) else SourceView.of(source)
    row: dict[str, Any] = dict.fromkeys(REFRAME_KEYS)
    fitted = align(view, edited, canvas)
    if timings is not None:
        timings["align"] = timings.get("align", 0.0) + time.perf_counter() - started
        started = time.perf_counter()
    if fitted is None:
        row.update(orientation="no product found", product_coverage=0.0, fit_iou=0.0)
        return row
    fit = fitted.fit
    outline = _outline_overlap(view.masks.mask, fitted.small_matrix, fitted.out_mask_small)
    row.update(orientation=fit.orientation, fit_iou=round(outline, 4), aspect_change=fit.aspect_change,
               rotation_deg=fit.rotation_deg)
    row["product_copies"] = 1 + _copies(fitted.out_mask_small, view.masks.mask, fitted.small_matrix)
    row.update(_backdrop_kept(view, fitted))
    row.update(_texture_clipped(view, fitted))
    box = _canvas_checks(row, view, fitted, edited, canvas)
    if box is not None:
        _product_checks(row, view, fitted, edited, canvas, box)
        _rim_cause(row)
    if timings is not None:
        timings["checks"] = timings.get("checks", 0.0) + time.perf_counter() - started
    return row


def _purity_tolerance(canvas: tuple[int, int, int], edited: Decoded) -> int:
    """Levels a background pixel may be off the canvas colour. None for a JPEG on white: libjpeg-turbo
    decodes a flat #FFFFFF block to exactly 255 at every DCT scale from quality 46 up (the profiles' JPEG
    floor is 70; ``test_detectors.py`` holds the decoder to it), so 254 there is the edit's. A canvas with a
    few levels of noise, decoded at 1/4 for a small source, averages to 254 nearly everywhere; one level of
    slack hid it (at 2000 px, 4 of the held-out half's 17 noisy canvases passed). Lossy WebP decodes flat
    white to 254 at some qualities up to 68, and other colours may decode a level off: one level there."""
    return 0 if tuple(canvas) == (255, 255, 255) and edited.format == "jpeg" else CANVAS_TOLERANCE


def _canvas_checks(row: dict[str, Any], view: SourceView, fitted: Aligned, edited: Decoded, canvas,
                   ) -> tuple[int, int, int, int] | None:
    """Background purity, marks on the canvas, halo and fill, on every decoded pixel; returns the product box."""
    out = edited.rgb
    h, w = out.shape[:2]
    frame = (0.0, float(h), 0.0, float(w))
    tol = max(1, int(np.ceil(FIT_TOLERANCE_SMALL / fitted.out_scale)))
    margin = tol + max(2, int(np.ceil(RINGING_PX / edited.scale)))
    outside = cv2.distanceTransform((~fitted.maybe).view(np.uint8), cv2.DIST_L2, 3)
    off = _off(out, canvas, _purity_tolerance(canvas, edited))
    background = outside > margin
    n_bg = max(1, int(np.count_nonzero(background)))
    off_bg = _open(off & background)
    # (a canvas tinted all over is no kept shade: not looked for)
    if off_bg.any() and view.decoded.alpha is None and np.count_nonzero(off_bg) <= 0.5 * n_bg:
        ys, xs = np.nonzero(off_bg)
        kept = _kept_shade(view, fitted.fit.matrix, out, ys, xs, tol + 1, canvas)
        off_bg[ys[kept], xs[kept]] = False
    n_off = int(np.count_nonzero(off_bg))
    row.update(bg_off_share=n_off / n_bg, bg_largest_mark=0.0, bg_where="", canvas_marks=0.0)
    if n_off:
        largest, where = _marks_where(off_bg, frame, "canvas")
        if row["bg_off_share"] > 0.5:
            where = "the whole canvas"
        elif sides := _sides_where(off_bg):
            where = sides
        elif np.count_nonzero(off_bg & (outside <= 3 * margin)) > 0.5 * n_off:
            where = "around the product"
        row.update(bg_largest_mark=largest, bg_where=where,
                   bg_colour="RGB " + ",".join(str(int(v)) for v in np.median(
                       out.reshape(-1, 3)[np.flatnonzero(off_bg)[::max(1, n_off // 20000)]], axis=0)))
        marks = _open(_off(out, canvas, MARK_LEVELS) & off_bg)
        if marks.any():
            row["canvas_marks"] = float(np.count_nonzero(marks) / n_bg)
            row["canvas_marks_where"] = _sides_where(marks) or _marks_where(marks, frame, "canvas")[1]
    # halo: a light rim hugging the outline, inside the ringing margin, beyond the anti-aliased edge
    from_product = cv2.distanceTransform((~fitted.product).view(np.uint8), cv2.DIST_L2, 3)
    # (light pixels only: a dark one beside the outline is the product itself where the fit is a few pixels off)
    ring = (from_product > 1.5) & (from_product <= margin) & _off(out, canvas, HALO_LEVELS) & ~_off(out, canvas, HALO_LIGHT)
    outline = max(1, int(np.count_nonzero((from_product > 0) & (from_product <= 1.5))))
    ys, xs = np.nonzero(ring)
    rim = _not_product(view, fitted.fit.matrix, ys, xs)
    # an even tone (a plateau) is a halo's; a soft edge fades, so its pixels are never flat
    ry, rx = ys[rim], xs[rim]
    # a rim of any tone counts beyond the product's own fade: an enlarged source's soft edge spans more edit px
    fade = HALO_EDGE_SOURCE_PX * min(fitted.fit.scale_x, fitted.fit.scale_y)
    beyond = from_product[ry, rx] > fade
    flat = np.zeros(0, bool)
    if len(ry):
        top, left = max(int(ry.min()) - 1, 0), max(int(rx.min()) - 1, 0)
        grey = cv2.cvtColor(np.ascontiguousarray(out[top:ry.max() + 2, left:rx.max() + 2]), cv2.COLOR_RGB2GRAY)
        flat = _gradient(grey.astype(np.float32))[ry - top, rx - left] < HALO_FLAT
    px_per_side = 1000.0 / (max(h, w) * edited.scale)  # canvas px -> px of a 1000 px canvas
    row["edge_halo_px"] = float(np.count_nonzero(beyond) / outline) * edited.scale
    row["edge_halo"] = row["edge_halo_px"] * px_per_side
    row["edge_halo_flat"] = float(np.count_nonzero(flat) / outline) * edited.scale * px_per_side
    # a cut-out's alpha says exactly where the product ends; a photo's edge is only as sure as the backdrop model
    row["edge_halo_cutout"] = row["edge_halo"] if view.decoded.alpha is not None else None
    # what the canvas shows of the product: off-canvas pixels where the product may be (marks beside it excluded)
    near = outside <= margin
    box = bbox(near & _off(out, canvas, 8))
    if box is None:
        return None
    row["product_fill"] = max((box[1] - box[0]) / h, (box[3] - box[2]) / w)
    y0, y1, x0, x1 = bbox(near) or box
    return y0, y1, x0, x1


def _rim_cause(row: dict[str, Any]) -> None:
    """Name the rim's cause: move its width from the halo keys to ``outline_rim`` / ``outline_rim_cutout``
    (a detail fault, judged by the same limits) when the product's own blur explains it.

    Blurred or upscaled, a soft product's outline fades out over more px than its own fade allows, and
    the halo check reads that as a light rim (the soft coin photo, a 4x enlargement). A halo is painted
    round the product: it leaves the inner edges as they were, and its tone is mostly even. A rim that
    fades round inner edges gone wider than the source's is the blur's, and the reviewer is told so.
    """
    width, flat, edges = row.get("edge_halo"), row.get("edge_halo_flat"), row.get("edge_width_ratio")
    if width is None or flat is None or edges is None:
        return
    if flat < RIM_FADES * width and edges >= RIM_SOFT_EDGES:
        row["outline_rim"], row["outline_rim_cutout"] = width, row["edge_halo_cutout"]
        row["edge_halo"] = row["edge_halo_cutout"] = None


def _kept_shade(view: SourceView, matrix: np.ndarray, out: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                reach: int, canvas) -> np.ndarray:
    """Of the edit-grid pixels (ys, xs) off the canvas outside the product: those the edit kept as the source has
    them (within the fit's residual, ``reach`` px) where the source is not its plain backdrop (a shade of it, or
    a pixel the product masks left out as a speck).

    The gate's backdrop model cannot tell a shaded product part of the backdrop's colour (a silver ribbon on a
    white sweep) from the backdrop's shadow, and a ribbon that splits a box drops its smaller pieces from the
    mask; an editor that kept them kept the source's own pixels, and that is no background fault the gate can
    name. The plain backdrop kept, a tint, a halo or a shadow the edit painted are not the source's product:
    those stay faults.
    """
    from airflow_image_catalog.pipeline.quality._product import LOOSE, grow_within

    backdrop = view.masks.backdrop
    if backdrop is None:
        return np.zeros(len(ys), bool)
    # the range the source takes within the fit's residual, on a crop of the edit grid around the pixels
    # (first, on whole arrays: a tinted canvas is nowhere the source's, and costs no per-pixel look-up)
    y0, x0 = max(0, int(ys.min()) - reach - 1), max(0, int(xs.min()) - reach - 1)
    y1, x1 = min(out.shape[0], int(ys.max()) + reach + 2), min(out.shape[1], int(xs.max()) + reach + 2)
    shifted = matrix[:2].copy()
    shifted[:, 2] -= (x0, y0)
    aligned = source_on_grid(view, shifted, (y1 - y0, x1 - x0), canvas)
    kernel = np.ones((2 * reach + 1,) * 2, np.uint8)
    lo = cv2.subtract(cv2.erode(aligned, kernel), (SHADE_KEPT_LEVELS,) * 3)
    hi = cv2.add(cv2.dilate(aligned, kernel), (SHADE_KEPT_LEVELS,) * 3)
    same = cv2.inRange(np.ascontiguousarray(out[y0:y1, x0:x1]), lo, hi).view(bool)[ys - y0, xs - x0]
    shade = np.zeros(len(ys), bool)
    if same.any():
        _, deviation = _against_backdrop(view, backdrop, matrix, ys[same], xs[same])
        darker = (deviation.ratio < 1.0) & (deviation.diff > max(SHADE_NOISE * backdrop.noise, SHADE_LEVELS))
        shade[same] = deviation.product(LOOSE) | darker
    if not shade.any():
        return shade
    # a shaded part's highlights are as light as the backdrop (a ribbon's rim): kept pixels next to it go with it
    seeds, allowed = np.zeros((y1 - y0, x1 - x0), bool), np.zeros((y1 - y0, x1 - x0), bool)
    seeds[ys - y0, xs - x0] = shade
    allowed[ys - y0, xs - x0] = same
    return grow_within(seeds, allowed, SHADE_GROW * reach)[ys - y0, xs - x0]


def _fine(grey: np.ndarray, sigma: float) -> np.ndarray:
    """What is finer than ``sigma`` px: a grey image minus its Gaussian blur (float32)."""
    g = np.asarray(grey, np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), sigma)


def _colour_bin(rgb: np.ndarray) -> np.ndarray:
    """Each (N, 3) uint8 colour's cell on a grid of ``COLOUR_BINS`` per channel."""
    q = (rgb // (256 // COLOUR_BINS)).astype(np.int32)
    return (q[:, 0] * COLOUR_BINS + q[:, 1]) * COLOUR_BINS + q[:, 2]


def _colour_share(rgb: np.ndarray) -> np.ndarray:
    """How often each colour cell occurs among ``rgb`` pixels."""
    return np.bincount(_colour_bin(rgb), minlength=COLOUR_BINS ** 3) / max(1, len(rgb))


def _outline_band(mask: np.ndarray) -> np.ndarray:
    """The outer ``KEPT_BAND`` of a silhouette, less its outermost pixel (mixed with the canvas)."""
    box = bbox(mask)
    if box is None:
        return np.zeros_like(mask)
    d = max(2, round(KEPT_BAND * max(box[1] - box[0], box[3] - box[2])))
    return _erode(mask, 1) & ~_erode(mask, d + 1)


def _backdrop_kept(view: SourceView, fitted: Aligned) -> dict[str, Any]:
    """Share of the edit's outline band in the source backdrop's colours, beyond what the source's own
    product outline has (None for a cut-out: it has no backdrop).

    A cut that went wide keeps a band of the old backdrop around the product; the fit then scales the
    source to product and band together, so every check that follows reads the consequences (stretched,
    colours changed, parts missing). The band's colours say it directly, without the fit: each is
    far likelier on the source's backdrop than on its product.
    """
    masks = view.masks
    if masks.backdrop is None:
        return {"backdrop_kept": None, "backdrop_kept_colour": ""}
    backdrop, product = _colour_share(view.small[~masks.maybe]), _colour_share(view.small[masks.mask])

    def backdrop_like(rgb: np.ndarray) -> np.ndarray:
        index = _colour_bin(rgb)
        return (backdrop[index] > BACKDROP_ODDS * product[index]) & (backdrop[index] > BACKDROP_SEEN)

    in_source = view.small[_outline_band(masks.mask)]
    in_edit = fitted.out_small[_outline_band(fitted.out_mask_small)]
    if not len(in_source) or not len(in_edit):
        return {"backdrop_kept": None, "backdrop_kept_colour": ""}
    kept = backdrop_like(in_edit)
    colour = "RGB " + ",".join(str(int(v)) for v in np.median(in_edit[kept], axis=0)) if kept.any() else ""
    return {"backdrop_kept": max(0.0, float(kept.mean() - backdrop_like(in_source).mean())), "backdrop_kept_colour": colour}


def _texture_clipped(view: SourceView, fitted: Aligned) -> dict[str, Any]:
    """Share of the product cut away along its edges, read from its texture (0: the outline's scale holds).

    A product clipped flat on every side and fitted to the canvas again keeps its outline's shape (a box
    stays a rectangle), so the outline fit maps the whole source onto what is left and nothing looks
    missing. Its texture tells: the middle of the edit matches the source enlarged beyond the outline's
    scale. The fine texture (grey minus its blur) of the middle ``TEXTURE_CORE`` of the edit's product is
    correlated with the source mapped by the fit and enlarged by each pair of ``TEXTURE_SCALES`` about
    the product's centre; the enlargement counts when the outline's own scale correlates at most
    ``TEXTURE_EVIDENCE`` of the best.
    """
    box = bbox(fitted.out_mask_small)
    if box is None:
        return {"texture_clipped": None, "texture_scale": ""}
    y0, y1, x0, x1 = box
    cy, cx, hy, hx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) * TEXTURE_CORE / 2, (x1 - x0) * TEXTURE_CORE / 2
    core = np.zeros_like(fitted.out_mask_small)
    core[int(cy - hy):int(np.ceil(cy + hy)), int(cx - hx):int(np.ceil(cx + hx))] = True
    core &= _erode(fitted.out_mask_small, 4)
    if np.count_nonzero(core) < 64:
        return {"texture_clipped": None, "texture_scale": ""}

    def fine(rgb: np.ndarray) -> np.ndarray:
        return _fine(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), TEXTURE_FINE)

    def standard(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / (v.std() + 1e-6)

    # (only the core's box is mapped: each try costs a sixth of a whole small copy)
    cy0, cy1, cx0, cx1 = bbox(core)
    core = core[cy0:cy1, cx0:cx1]
    edit = standard(fine(fitted.out_small)[cy0:cy1, cx0:cx1][core])
    # the source's own texture only: its outline against the backdrop is no texture of the product's
    source = fine(view.small) * _erode(view.masks.mask, 3)
    to_box = np.array([[1.0, 0, -cx0], [0, 1.0, -cy0], [0, 0, 1]])
    scores = {}
    for kx in TEXTURE_SCALES:
        for ky in TEXTURE_SCALES:
            enlarge = np.array([[kx, 0, cx * (1 - kx)], [0, ky, cy * (1 - ky)], [0, 0, 1]])
            mapped = cv2.warpAffine(source, (to_box @ enlarge @ fitted.small_matrix)[:2], (cx1 - cx0, cy1 - cy0),
                                    flags=cv2.INTER_LINEAR)
            scores[kx, ky] = float(np.mean(standard(mapped[core]) * edit))
    (kx, ky), best = max(scores.items(), key=lambda kv: kv[1])
    if best < TEXTURE_MIN_CORRELATION or scores[1.0, 1.0] > TEXTURE_EVIDENCE * best:
        return {"texture_clipped": 0.0, "texture_scale": ""}
    return {"texture_clipped": 1.0 - 1.0 / (kx * ky), "texture_scale": f"{kx:.2f}x wider and {ky:.2f}x taller"}


def _not_product(view: SourceView, matrix: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Of the edit-grid pixels (ys, xs): those where the source is certainly not product.

    Decided pixel by pixel on the source at its own size: a cut-out's alpha below ``ALPHA_CLEAR``;
    else not even loosely product against the gate's backdrop model. The small copy's "may be
    product" is several source pixels wider than the product (the outline is uncertain there), wide
    enough to hide a halo of 6-12 px; one source pixel of precision leaves the halo in view.
    """
    if len(ys) == 0:
        return np.zeros(0, bool)
    from airflow_image_catalog.pipeline.quality._product import LOOSE

    alpha = view.decoded.alpha
    if alpha is not None:
        src_x, src_y = _to_source(matrix, ys, xs)
        return _sample(alpha, src_x, src_y)[:, 0] < ALPHA_CLEAR
    backdrop = view.masks.backdrop
    if backdrop is None:
        return np.zeros(len(ys), bool)
    return ~_against_backdrop(view, backdrop, matrix, ys, xs)[1].product(LOOSE)


def _product_checks(row: dict[str, Any], view: SourceView, fitted: Aligned, edited: Decoded, canvas,
                    box: tuple[int, int, int, int]) -> None:
    """Completeness, colour, structure, tone, text and marks of the product on a crop of at most
    ``COMPARE_SIDE`` px, never finer than the source (one source pixel >= one crop pixel); detail
    on tiles at the source's own resolution."""
    fit = fitted.fit
    y0, y1, x0, x1 = box
    # one source pixel covers `native` decoded edit pixels; the crop grid is at least that coarse
    native = min(fit.scale_x, fit.scale_y)
    up = max(1.0, native, max(y1 - y0, x1 - x0) / COMPARE_SIDE)
    size = (max(8, round((x1 - x0) / up)), max(8, round((y1 - y0) / up)))
    shape = (size[1], size[0])
    to_crop = np.array([[1 / up, 0, -x0 / up], [0, 1 / up, -y0 / up], [0, 0, 1]]) @ np.vstack([fit.matrix, [0, 0, 1]])
    matrix = to_crop[:2]
    crop = edited.rgb[y0:y1, x0:x1]
    out = crop if up == 1.0 else cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    aligned = source_on_grid(view, matrix, shape, canvas)
    alpha = view.decoded.alpha
    grid = masks_on_grid(view, matrix, shape)
    product, sure = grid.product, grid.sure
    core = _erode(product, 1)

    # completeness: expected product area (incl. what fell off the canvas) vs what is there
    if alpha is not None:
        expected = float(np.count_nonzero(alpha >= 128)) * abs(np.linalg.det(matrix[:, :2]))
    else:
        expected = float(np.count_nonzero(view.masks.mask)) * abs(np.linalg.det(matrix[:, :2])) / view.scale**2
    off_canvas = max(0.0, expected - float(np.count_nonzero(product)))
    canvas_here = ~_off(out, canvas, CANVAS_TOLERANCE)
    candidates = sure & core & canvas_here & _off(aligned, canvas, 12)
    if alpha is None and candidates.any():
        candidates &= ~_looks_like_backdrop(view, aligned, candidates, matrix)
    missing = _open(candidates, 3)
    n_missing = float(np.count_nonzero(missing))
    row["product_coverage"] = max(0.0, 1.0 - (n_missing + off_canvas) / max(expected, 1.0))
    row["missing_piece"] = _largest_share(missing, expected)
    holes = _enclosed(missing, product)
    row["hole_piece"] = _largest_share(holes, expected)
    pbox = bbox(product)
    if row["hole_piece"] > 0 and pbox is not None:
        row["hole_where"] = _marks_where(holes, tuple(float(v) for v in pbox), "product")[1]
    if n_missing + off_canvas > 0.005 * expected:
        full = edited.rgb.shape[:2]
        touches = (y0 <= 1, y1 >= full[0] - 1, x0 <= 1, x1 >= full[1] - 1)
        row["missing_kind"], row["missing_where"] = _missing_kind(missing, product, off_canvas, n_missing, touches)

    m = _erode(core, 1)
    if np.count_nonzero(m) < 64:
        return
    from airflow_image_catalog.pipeline.quality.metrics import blockiness, ciede2000, ssim

    ga, gb = _grey(aligned), _grey(out)
    row["product_ssim"] = ssim(ga, gb, m)
    row["delta_e_product"] = ciede2000(aligned, out, m, max_side=160)
    row["colour_cast"] = _colour_cast(aligned, out, m)
    row["contrast_ratio"] = (_spread(gb, m) + 2.0) / (_spread(ga, m) + 2.0)
    row["clipped_gain"] = _clipped(gb, m) - _clipped(ga, m)
    row["tone_levels_ratio"] = _levels(gb, m) / max(1.0, _levels(ga, m))
    grad_a, grad_b = _gradient(ga), _gradient(gb)
    # a detail patch covers DETAIL_TILE + 12 comparison px; on this crop that is `t` px, wholly inside the product
    t = max(4, int(np.ceil((DETAIL_TILE + 12) * _detail_grid(native) * native / up)))
    tiles = _detail_tiles(grad_a, m, t)
    centres = [((ty + 0.5) * t * up + y0, (tx + 0.5) * t * up + x0) for ty, tx in tiles]
    row.update(_detail_ratios(view, edited, fit, centres))
    row["edge_width_ratio"] = _edge_width_ratio((ga, grad_a), (gb, grad_b), product)
    warped_alpha = None if alpha is None else cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR)
    row.update(_outline_softness((ga, grad_a), (gb, grad_b), product, warped_alpha, canvas, up * edited.scale))
    reach = max(2, int(np.ceil(FIT_TOLERANCE_SMALL / fitted.out_scale / up)))  # the fit's residual, crop px
    row.update(_printed_text(ga, gb, m, reach))
    row.update(_product_marks(grad_a, grad_b, m))
    painted_on = m
    if warped_alpha is not None:  # a translucent part (a painted drop shadow) looks as the compositing makes it: not judged
        painted_on = m & (warped_alpha >= OPAQUE)
    row.update(_overpainted(aligned, out, painted_on, reach, canvas))
    # block artefacts, on the grid the JPEG was coded on (a crop of the decoded edit, block-aligned)
    block = max(1, 8 // edited.scale)
    by0, bx0 = (y0 // block) * block, (x0 // block) * block
    side = BLOCK_CROP // edited.scale
    cy, cx = max(by0, ((y0 + y1) // 2 - side // 2) // block * block), max(bx0, ((x0 + x1) // 2 - side // 2) // block * block)
    # at 1/8 (a small source product on a big canvas) a block is one decoded pixel: no grid to see;
    # the JPEG quality from the quantisation tables still judges the compression
    row["blockiness"] = blockiness(edited.rgb[cy:cy + side, cx:cx + side], block) if block >= 2 else None
    src = view.decoded.rgb
    sbox = bbox(view.masks.mask)
    if sbox is not None:
        sy, sx = int(sbox[0] / view.scale) // 8 * 8, int(sbox[2] / view.scale) // 8 * 8
        row["blockiness_source"] = blockiness(src[sy:sy + BLOCK_CROP, sx:sx + BLOCK_CROP])


def _colour_cast(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    """CIEDE2000 of the product's colours averaged over patches (~1/16 of the product): a hue or
    brightness shift, not the pixel-level differences of posterisation or noise."""
    from airflow_image_catalog.pipeline.quality.metrics import delta_e2000, rgb_to_lab

    h, w = m.shape
    size = (max(2, w // 24), max(2, h // 24))
    weight = cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    keep = weight > 0.99
    if not keep.any():
        return float("nan")
    patches = [cv2.resize(x, size, interpolation=cv2.INTER_AREA)[keep] for x in (a, b)]
    return float(delta_e2000(rgb_to_lab(patches[0]), rgb_to_lab(patches[1])).mean())


def _looks_like_backdrop(view: SourceView, aligned: np.ndarray, where: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Pixels (of ``where``) that are the backdrop in another light: its chromaticity, only brighter or darker.

    A hole in the product (a mug's handle opening) shows the backdrop, lit differently from what the
    backdrop model guessed under the product; a lost *part* of the product has the product's own
    colour. Only the second is a completeness fault the gate can tell from the source alone.
    """
    from airflow_image_catalog.pipeline.quality._product import Backdrop, Deviation

    backdrop = view.masks.backdrop
    out = np.zeros_like(where)
    if backdrop is None:
        return out
    ys, xs = np.nonzero(where)
    src_x, src_y = _to_source(matrix, ys, xs)
    model = _sample(backdrop.model, src_x * view.scale, src_y * view.scale)
    deviation = Deviation.of(aligned[ys, xs], Backdrop(model, backdrop.noise))
    # (another light, not another thing: a grey coin 2.7x as bright as its grey backdrop is product)
    out[ys, xs] = (deviation.chroma <= max(5.0 * backdrop.noise, 14.0)) & (deviation.ratio <= BACKDROP_LIGHT)
    return out


def _enclosed(missing: np.ndarray, product: np.ndarray) -> np.ndarray:
    """The pieces of ``missing`` with product all round them (holes), not reaching the outline.

    A hole is a fault at any size a shopper sees (the canvas showing through the product); a
    piece lost at the outline is weighed by its size (``missing_piece``), since the outline is
    where the gate's own view of the product is least sure.
    """
    if not missing.any():
        return missing
    outline = product & ~_erode(product, 2)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(missing.view(np.uint8), connectivity=8)
    grown = cv2.dilate(missing.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    touching = np.unique(labels[cv2.dilate((grown & outline).view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
                                & missing])
    keep = np.setdiff1d(np.arange(1, n), touching)
    return np.isin(labels, keep)


def _largest_share(mask: np.ndarray, total: float) -> float:
    """The largest connected piece of ``mask`` as a share of ``total`` pixels."""
    if not mask.any():
        return 0.0
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max() / max(total, 1.0))


def _spread(grey: np.ndarray, m: np.ndarray) -> float:
    """The product's tonal spread: the 10th to 90th percentile range of its grey levels.

    Not the standard deviation: on a flat product (a black silhouette) the few outline pixels a
    one-pixel misregistration mixes with the canvas are all of the deviation, and it swings.
    """
    lo, hi = np.percentile(grey[m], (10, 90))
    return float(hi - lo)


def _outline_overlap(source_small: np.ndarray, small_matrix: np.ndarray, out_small: np.ndarray) -> float:
    """Overlap of the fitted source outline and the edit's, each pixel allowed one small-copy pixel of slack.

    (|A within 1 px of B| + |B within 1 px of A|) / (|A| + |B|): 1 when every pixel of either lies
    next to the other. Plain IoU on a 256 px copy punishes thin parts (a logo's 2 px letters) for
    sub-pixel registration; lost, added or reshaped parts still lower this.
    """
    h, w = out_small.shape
    a = cv2.warpAffine(source_small.view(np.uint8) * np.uint8(255), small_matrix[:2], (w, h),
                       flags=cv2.INTER_LINEAR) >= 128
    kernel = np.ones((3, 3), np.uint8)
    a_grown = cv2.dilate(a.view(np.uint8), kernel).view(bool)
    b_grown = cv2.dilate(out_small.view(np.uint8), kernel).view(bool)
    total = np.count_nonzero(a) + np.count_nonzero(out_small)
    return float((np.count_nonzero(a & b_grown) + np.count_nonzero(out_small & a_grown)) / max(1, total))


def _clipped(grey: np.ndarray, m: np.ndarray) -> float:
    g = grey[m]
    return float(np.count_nonzero((g >= 254) | (g <= 1)) / max(1, g.size))


def _levels(grey: np.ndarray, m: np.ndarray) -> float:
    """The product's effective number of grey levels: exp of its grey histogram's entropy.

    Not a count of the levels present: a posterised product saved as JPEG, or resampled, has its few
    bands blurred into every level between them (a count kept 90 % of the source's), yet nearly all its
    pixels still sit in a handful of levels, which the entropy sees (tuning half: posterised 4-46 % of
    the source's, clean edits 95-103 %).
    """
    counts = np.bincount(np.clip(grey[m] + 0.5, 0, 255).astype(np.uint8), minlength=256).astype(np.float64)
    p = counts[counts > 0] / max(1.0, counts.sum())
    return float(np.exp(-(p * np.log(p)).sum()))


def _missing_kind(missing: np.ndarray, product: np.ndarray, off_canvas: float, n_missing: float,
                  touches: tuple[bool, bool, bool, bool]) -> tuple[str, str]:
    """What kind of loss (cut off by the canvas edge, clipped flat, a hole, a lost part) and where."""
    if off_canvas >= n_missing:
        sides = [name for name, hit in zip(("top", "bottom", "left", "right"), touches, strict=True) if hit]
        return "cut off by the canvas edge", f"at the {' and '.join(sides) or 'canvas'} edge"
    pbox = bbox(product)
    mbox = bbox(missing)
    assert pbox is not None and mbox is not None
    y0, y1, x0, x1 = pbox
    where = f"{place_of(mbox, pbox)} of the product"
    # clipped flat: the loss lies in straight strips along the product box's sides
    depth = max(2, int(0.08 * max(y1 - y0, x1 - x0)))
    strips = {"top": missing[y0:y0 + depth], "bottom": missing[y1 - depth:y1], "left": missing[:, x0:x0 + depth],
              "right": missing[:, x1 - depth:x1]}
    in_strips = np.zeros_like(missing)
    in_strips[y0:y0 + depth] = in_strips[y1 - depth:y1] = True
    in_strips[:, x0:x0 + depth] = in_strips[:, x1 - depth:x1] = True
    sides = [name for name, strip in strips.items() if np.count_nonzero(strip) > 0.1 * n_missing]
    if np.count_nonzero(missing & in_strips) > 0.8 * n_missing and len(sides) >= 2:
        return "clipped flat", f"along the {', '.join(sides)} side{'s' * (len(sides) > 1)}"
    # a hole keeps product all round it; a lost part reaches the outline
    outline = product & ~_erode(product, 2)
    grown = cv2.dilate(missing.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    return ("a hole" if not np.any(grown & outline) else "a part missing"), where


def _copies(out_mask_s: np.ndarray, strict_s: np.ndarray, small_matrix: np.ndarray) -> int:
    """Pieces beside the aligned product at least 40 % of its size: the product duplicated."""
    shape = out_mask_s.shape
    placed = cv2.warpAffine(strict_s.view(np.uint8), small_matrix[:2], (shape[1], shape[0]),
                            flags=cv2.INTER_NEAREST).view(bool)
    beside = out_mask_s & ~cv2.dilate(placed.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    if not beside.any():
        return 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(beside.view(np.uint8), connectivity=8)
    area = max(1, int(np.count_nonzero(placed)))
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.4 * area))


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _gradient(grey: np.ndarray) -> np.ndarray:
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def _band(grey: np.ndarray) -> np.ndarray:
    """The image less its Gaussian blur (sigma ``DETAIL_BAND``, 1 px): the finest detail a pixel grid
    holds (measured on the corpus, this band separates a 2.5x resolution loss from clean edits better
    than the coarser difference-of-Gaussians bands)."""
    return _fine(grey, DETAIL_BAND)


def _faithful(patch: np.ndarray, native: float, side: int) -> np.ndarray:
    """The source patch as a faithful edit would hold it: resampled to the edit's scale and back onto the grid.

    Any resize attenuates the finest band a little; judging the edit against this reference (not against
    the raw source) leaves only what the edit itself lost.
    """
    size = max(4, round(patch.shape[0] * native))
    there = cv2.resize(patch, (size, size), interpolation=cv2.INTER_CUBIC if native > 1 else cv2.INTER_AREA)
    return cv2.resize(there, (side, side), interpolation=cv2.INTER_AREA)


def _detail_grid(native: float) -> float:
    """Source px per comparison px: the source's own when the edit is at least as fine, else a little
    coarser than the edit (a downscaled edit cannot hold the finest band exactly)."""
    return 1.0 if native >= 1.0 else 1.25 / native


def _detail_tiles(grad_a: np.ndarray, m: np.ndarray, t: int) -> list[tuple[int, int]]:
    """(row, col) of the ``DETAIL_TILES`` t x t tiles wholly inside the product with the most source gradient energy."""
    h, w = m.shape
    ny, nx = h // t, w // t
    if ny <= 0 or nx <= 0:
        return []
    inner = m[: ny * t, : nx * t].reshape(ny, t, nx, t).all(axis=(1, 3))
    energy = (grad_a[: ny * t, : nx * t] ** 2).reshape(ny, t, nx, t).mean(axis=(1, 3))
    energy[~inner] = -1.0
    order = np.argsort(energy.ravel())[::-1][:DETAIL_TILES]
    return [divmod(int(i), nx) for i in order if energy.flat[i] > 0]


def _detail_ratios(view: SourceView, edited: Decoded, fit: Fit, centres: list[tuple[float, float]]) -> dict[str, Any]:
    """Share of the source's fine detail the edit reproduces, at the source's own resolution, on tiles
    (``detail_ratio``, 1 = kept), and how the edit's finest detail holds up against its coarser detail
    (``fine_detail_balance``, 1 = as in the source); None: no tile with detail.

    Each tile centre (edit coordinates) is mapped back into the source; a ``DETAIL_TILE`` px patch of
    the source there and the matching patch of the edit, area-resampled onto the same grid (one source
    pixel, or one edit pixel if the edit is the coarser), are compared by the energy of their finest
    band (``_band``), the source's as a faithful resample would keep it (``_faithful``). Energies, not a
    projection of the edit's band on the source's after registering the patches (tried: on the tuning
    half at 1000 px that read 0.41..1.0 on clean edits and 0.23..0.50 on 2.5x upscales). A 4x upscale
    or a blur loses this band whatever the display size.

    The energy ratio also moves with the texture's contrast and what the resampling adds (a clean brushed
    can read 0.98..1.58, its 2.5x upscale 0.79). An upscale or a blur takes the finest detail first and
    leaves the coarser: the same ratio for what is finer than ``BALANCE_FINE`` px, over the ratio for what
    is finer than ``BALANCE_COARSE`` px, cancels the contrast and keeps the loss (tuning half at 1000 px:
    clean 0.945..2.3, the gallery's right engine edits 0.94..1.15, upscaled or blurred 0.29..0.78).
    """
    if not centres:
        return {"detail_ratio": None}
    native = min(fit.scale_x, fit.scale_y)  # edit px per source px
    grid = _detail_grid(native)
    inverse = np.linalg.inv(np.vstack([fit.matrix, [0, 0, 1]]))
    side = DETAIL_TILE + 12
    src, out = view.decoded.rgb, edited.rgb
    cuts = (DETAIL_BAND, BALANCE_FINE, BALANCE_COARSE)
    ea, eb = np.zeros(len(cuts)), np.zeros(len(cuts))
    flat = 0
    for cy, cx in centres:
        sx, sy = (inverse @ [cx, cy, 1.0])[:2]
        patches = []
        for image, (py, px), step in ((src, (sy, sx), grid), (out, (cy, cx), grid * native)):
            half = side * step / 2
            ya, yb, xa, xb = int(py - half), int(np.ceil(py + half)), int(px - half), int(np.ceil(px + half))
            if ya < 0 or xa < 0 or yb > image.shape[0] or xb > image.shape[1]:
                break
            patch = cv2.cvtColor(np.ascontiguousarray(image[ya:yb, xa:xb]), cv2.COLOR_RGB2GRAY).astype(np.float32)
            patches.append(patch if image is out else cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA))
        if len(patches) == 2:
            source, edit = patches[0], cv2.resize(patches[1], (side, side), interpolation=cv2.INTER_AREA)
            band = _band(source)[6:-6, 6:-6]
            # a tile whose finest band is mostly noise has no detail to lose (noise may well be removed):
            # structure must carry 3x the energy that noise of the tile's own robust level would
            noise = float(np.median(np.abs(band))) / 0.6745
            if float((band * band).mean()) < max(3.0 * noise * noise, 0.5):
                flat += 1
                continue
            reference = _faithful(source, native * grid, side)
            for k, sigma in enumerate(cuts):
                a, b = _fine(reference, sigma)[6:-6, 6:-6], _fine(edit, sigma)[6:-6, 6:-6]
                ea[k] += float((a * a).sum())
                eb[k] += float((b * b).sum())
    if flat == len(centres) or not (ea > 0).all():  # a flat product: no detail to lose
        return {"detail_ratio": None}
    ratio = eb / ea
    return {"detail_ratio": float(ratio[0]), "fine_detail_balance": float(ratio[1] / ratio[2])}


def _steps(image: tuple[np.ndarray, np.ndarray], reach: int, slack: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(contrast, slope) at each pixel of (grey, its ``_gradient``): the grey range within ``reach`` px and
    the steepest slope within ``slack`` px. A step of contrast C blurred to width w has a peak slope of
    about C / w, so C / slope is the width of the step, whatever its contrast."""
    grey, gradient = image
    window = np.ones((2 * reach + 1,) * 2, np.uint8)
    # (a Sobel pair reads 8x a ramp's slope)
    slope = cv2.dilate(gradient / 8.0, np.ones((2 * slack + 1,) * 2, np.uint8))
    return cv2.dilate(grey, window) - cv2.erode(grey, window), slope


def _width(contrast: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return (contrast + 1.0) / (slope + 0.5)


def _outline_softness(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], product: np.ndarray,
                      alpha: np.ndarray | None, canvas, px: float) -> dict[str, Any]:
    """How much wider the product's outline fades in the edit than it should (1 = as crisp; None: too
    little outline stands out from both backdrops to say), and over how many px of the edit as published
    (``px`` of them to a crop px).

    The inner-edge check needs edges inside the product; a smooth one (a colour wheel, a plain can)
    blurred or upscaled shows it only at its outline. The outline's width is measured as the inner
    edges' (``_steps``) on the comparison crop, in the edit (against the canvas) and in the source
    (against its own backdrop; a cut-out composited on the canvas), and the edit's is set against the
    wider of the source's and ``CRISP_OUTLINE`` (what a crisp cut reads on this grid: an editor's matte
    may sharpen a soft photo edge, never soften a crisp one much). Tuning half at 1000 px: clean edits,
    the engine's included, 0.73..1.01, the gallery's right engine edits of real photos 0.77..1.08; the
    blurred plain bottles no other check sees 1.21..1.31.
    """
    if alpha is not None:
        level = float(_grey(np.array([[canvas]], np.uint8))[0, 0])
        opacity = alpha.astype(np.float32) / 255.0
        composited = a[0] * opacity + level * (1.0 - opacity)
        a = composited, _gradient(composited)
    # (the slope anywhere in the window: the mask's outline may lie a pixel or two off the step itself)
    (ca, sa), (cb, sb) = _steps(a, OUTLINE_REACH, OUTLINE_REACH), _steps(b, OUTLINE_REACH, OUTLINE_REACH)
    outline = product & ~_erode(product, 1) & (ca >= EDGE_CONTRAST) & (cb >= EDGE_CONTRAST)
    if np.count_nonzero(outline) < OUTLINE_MIN_POINTS:
        return {"outline_softness": None}
    source, edit = np.median(_width(ca, sa)[outline]), np.median(_width(cb, sb)[outline])
    return {"outline_softness": float(edit / max(source, CRISP_OUTLINE)), "outline_width": float(edit * px)}


def _edge_width_ratio(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], product: np.ndarray,
                      ) -> float | None:
    """How much wider the product's strong inner edges are in the edit than in the source (1 = as sharp;
    None: no such edges).

    A flat product (a plain mug) has no fine texture for the detail tiles to weigh, but the borders of
    its label or its handle still say whether the edit was blurred or upscaled. At the source's strong
    steps inside the product the widths (``_steps``) of edit and source are compared, each slope with one
    pixel of slack for the fit's residual; the median ratio is robust to a few misplaced points. Not the
    outline: an editor's matte rightly softens it (a binary silhouette's step read 1.36x after a right
    edit), and in the source it stood on another backdrop; ``_outline_softness`` judges it against a
    crisp cut instead.
    """
    (ca, sa), (cb, sb) = _steps(a, EDGE_REACH), _steps(b, EDGE_REACH)
    # a step, not a gentle shading, of about the same contrast in the edit (where a handle's opening showed
    # the backdrop and now shows white, its rim is another edge)
    strong = (ca >= EDGE_CONTRAST) & (sa >= 0.25 * ca) & (cb >= 0.75 * ca) & (cb <= 1.33 * ca)
    strong &= _erode(product, EDGE_REACH + 1)
    if np.count_nonzero(strong) < EDGE_MIN_POINTS:
        return None
    ratio = _width(cb[strong], sb[strong]) / _width(ca[strong], sa[strong])
    return float(np.median(ratio))


def text_regions(grey: np.ndarray, region: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) of printed lines of text in ``region``: classical, weight-free.

    Glyphs are the connected components of a local (adaptive) threshold, dark-on-light and
    light-on-dark, of a letter's size and shape; a line is three or more glyphs of similar
    height side by side on one baseline (the grouping idea of classical scene-text detectors,
    e.g. the stroke-width / MSER pipelines). A silhouette, a shadow or a highlight makes one
    big or one long component, not a row of letters.
    """
    box = bbox(region)
    if box is None:
        return []
    ry = box[1] - box[0]
    g = np.clip(grey, 0, 255).astype(np.uint8)
    block = max(3, (ry // 12) | 1)
    inside = _erode(region, 2)
    glyphs = []
    # dark glyphs: 18 levels below their surroundings; light glyphs: 18 above
    for polarity, offset in ((cv2.THRESH_BINARY_INV, 18), (cv2.THRESH_BINARY, -18)):
        binary = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, polarity, block, offset)
        binary[~inside] = 0
        n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for x, y, w, h, area in stats[1:]:
            if 0.015 * ry <= h <= 0.15 * ry and 0.08 * h <= w <= 1.6 * h and 0.12 * w * h <= area <= 0.9 * w * h:
                glyphs.append((float(x), float(y), float(w), float(h)))
    if len(glyphs) < 3 or len(glyphs) > 400:
        return []
    parent = list(range(len(glyphs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(glyphs)), key=lambda i: glyphs[i][0])
    for k, i in enumerate(order):
        xi, yi, wi, hi = glyphs[i]
        for j in order[k + 1:]:
            xj, yj, wj, hj = glyphs[j]
            if xj - (xi + wi) > 1.2 * max(hi, hj):
                break
            same_size = max(hi, hj) <= 1.5 * min(hi, hj)
            same_line = abs((yi + hi) - (yj + hj)) <= 0.3 * max(hi, hj) or abs((yi + hi / 2) - (yj + hj / 2)) <= 0.3 * max(hi, hj)
            if same_size and same_line:
                parent[root(j)] = root(i)
    lines: dict[int, list[tuple[float, float, float, float]]] = {}
    for i, glyph in enumerate(glyphs):
        lines.setdefault(root(i), []).append(glyph)
    out = []
    for members in lines.values():
        if len(members) < 3:
            continue
        x0 = min(m[0] for m in members)
        x1 = max(m[0] + m[2] for m in members)
        y0 = min(m[1] for m in members)
        y1 = max(m[1] + m[3] for m in members)
        out.append((int(y0), int(np.ceil(y1)), int(x0), int(np.ceil(x1))))
    return out


def _letters(grey: np.ndarray, line_height: int) -> np.ndarray:
    """The letter strokes of a text window: the window minus its blur at a quarter of the line's height.
    What is wider than a stroke (the label's shading, its edge, the product's outline) is gone, so
    lettering painted out over a shaded label no longer matches on the shading alone."""
    return _fine(grey, max(1.0, LETTER_BAND * line_height))


def _printed_text(ga: np.ndarray, gb: np.ndarray, m: np.ndarray, reach: int = 2) -> dict[str, Any]:
    """The product's own printed text, kept? Worst normalised correlation of a source text line's
    letter strokes with the edit's around the same place (None: no text). The search covers the fit's
    residual error (``reach`` px) and a sixth of the line's height: a coin's small relief lettering
    read a few pixels off its place matches at 60 % though nothing changed."""
    lines = text_regions(ga, m)
    if not lines:
        return {"text_lines": 0, "text_ssim": None}
    h, w = ga.shape
    scores = []
    for y0, y1, x0, x1 in lines:
        pad, search = max(2, (y1 - y0) // 4), max(2, reach, (y1 - y0) // 6)
        ty0, ty1, tx0, tx1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        sy0, sy1, sx0, sx1 = max(0, ty0 - search), min(h, ty1 + search), max(0, tx0 - search), min(w, tx1 + search)
        template = _letters(ga[ty0:ty1, tx0:tx1], y1 - y0)
        if template.std() < 1.0:
            continue
        found = cv2.matchTemplate(_letters(gb[sy0:sy1, sx0:sx1], y1 - y0), template, cv2.TM_CCOEFF_NORMED)
        scores.append(float(found.max()))
    if not scores:
        return {"text_lines": 0, "text_ssim": None}
    return {"text_lines": len(scores), "text_ssim": min(scores)}


def _overpainted(aligned: np.ndarray, out: np.ndarray, m: np.ndarray, reach: int, canvas) -> dict[str, Any]:
    """Share of the product the edit painted over (a translucent watermark, a badge, a sticker) and where.

    A pixel is painted over when some channel of the edit lies more than ``OVERPAINT_LEVELS`` outside
    the range the source takes within ``reach`` pixels of it (the fit's residual error): a misfit
    moves edges and texture within that range, a mark laid over the product leaves it. Weak marks
    count: a white watermark at 35 % on a light product moves it a dozen levels, not the 60 an edge
    detector needs. A change over most of the product is a colour or tone change, judged elsewhere.
    """
    a = cv2.GaussianBlur(aligned, (0, 0), 1.0).astype(np.int16)
    b = cv2.GaussianBlur(out, (0, 0), 1.0).astype(np.int16)
    kernel = np.ones((2 * reach + 1,) * 2, np.uint8)
    lo, hi = cv2.erode(a, kernel), cv2.dilate(a, kernel)
    inner = _erode(m, reach)  # where a misfit outline brings the canvas in, the range says nothing
    # the canvas colour inside the product is a completeness matter (a hole, a part lost, backdrop the
    # gate took for product cut away), not paint
    changed = channel_max((b > hi + OVERPAINT_LEVELS) | (b < lo - OVERPAINT_LEVELS)) & inner & _off(out, canvas, 8)
    changed = _open(changed, 3)
    area = max(1, np.count_nonzero(inner))
    share = float(np.count_nonzero(changed) / area)
    if share > OVERPAINT_GLOBAL:
        return {"product_overpainted": 0.0, "product_overpainted_where": "the whole product"}
    box = bbox(m)
    where = _marks_where(changed, tuple(float(v) for v in box), "product")[1] if share > 0 and box is not None else ""
    return {"product_overpainted": share, "product_overpainted_where": where}


def _product_marks(grad_a: np.ndarray, grad_b: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """Share of the product covered by edges the edit added (text, watermark, stamp) and where."""
    near_source = cv2.dilate(grad_a, np.ones((5, 5), np.uint8))
    inner = _erode(m, 3)  # the outline itself is the cut's, not a mark
    new = (grad_b > 60.0) & (grad_b > 2.0 * near_source + 20.0) & inner
    new = cv2.morphologyEx(new.view(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).view(bool) & inner
    area = max(1, np.count_nonzero(m))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(new.view(np.uint8), connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.0005 * area) + 1  # a stroke, not a speck
    new = np.isin(labels, keep) if len(keep) < n - 1 else new
    share = float(np.count_nonzero(new) / area)
    box = bbox(m)
    where = ""
    if share > 0 and box is not None:
        where = _marks_where(new, tuple(float(v) for v in box), "product")[1]
    return {"product_marks": share, "product_marks_where": where}


__all__ = ["REFRAME_KEYS", "WORK_SIDE", "measure_reframe", "place_of"]
