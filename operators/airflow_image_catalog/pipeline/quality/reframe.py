"""The checks of a reframed edit (product cut out onto a new canvas), judged without the editor.

The gate decides the source product itself (``_product``), finds where it went (``_align``),
and then asks of the edit, each on its own terms:

- canvas: every pixel outside the aligned product (and the few pixels of anti-aliasing and
  JPEG ringing around it) is exactly the profile's canvas colour; what is not is a background
  fault with a place (a corner, an edge, around the product, the whole canvas) and a colour;
- completeness: the edit contains the whole source product: no pixel of it turned into canvas
  (a lost part, a hole, an edge clipped flat) or fell off the canvas;
- identity: same orientation, proportions and silhouette, one copy, the same colours;
- overlays: marks the edit added, on the canvas (strong-contrast marks, text) or on the product
  (edges the source does not have there), found weight-free;
- detail: high-frequency energy of the product, compared at the source's own resolution in the
  product's most detailed tiles (a 2000 px edit that is a 4x upscale shows it there, not at
  512 px); tonal range, clipping and posterisation.

One flat row of numbers and short location strings; ``reasons`` turns failed checks into
sentences. All pure numpy / OpenCV on the decoded arrays; no Airflow, no weights.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from airflow_image_catalog.pipeline.quality._align import Fit, fit_source, to_full
from airflow_image_catalog.pipeline.quality._decode import Decoded
from airflow_image_catalog.pipeline.quality._product import WORK_SIDE, canvas_product, product_masks, shrink

#: a canvas pixel is the canvas colour when every channel is within this (JPEG decodes flat white exactly)
CANVAS_TOLERANCE = 2
#: residual error of the fit, in small-copy pixels (the checks allow it around the product's outline)
FIT_TOLERANCE_SMALL = 1.0
#: around the product, JPEG ringing (one 8x8 / 16x16 chroma block) is not a background fault
RINGING_PX = 12
#: a background pixel off the canvas by more than this is a strong mark (text, logo, frame), not a tint
MARK_LEVELS = 40
#: tiles the detail check compares, and their side at the comparison scale
DETAIL_TILES, DETAIL_TILE = 8, 32

REFRAME_KEYS = (
    "orientation", "fit_iou", "aspect_change", "rotation_deg", "product_copies", "product_coverage",
    "missing_kind", "missing_where", "bg_off_share", "bg_largest_mark", "bg_where", "bg_colour",
    "edge_halo_px", "canvas_marks", "canvas_marks_where", "product_marks", "product_marks_where",
    "detail_ratio", "contrast_ratio", "clipped_gain", "tone_levels_ratio", "product_fill", "delta_e_product",
    "product_ssim",
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


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _disc(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    return mask.copy() if px <= 0 else cv2.erode(mask.view(np.uint8), _disc(px)).view(bool)


def _off(image: np.ndarray, colour: tuple[int, int, int], levels: int) -> np.ndarray:
    """Pixels with some channel more than ``levels`` away from ``colour``."""
    c = np.asarray(colour, np.int32)
    lo, hi = np.clip(c - levels, 0, 255).astype(np.uint8), np.clip(c + levels, 0, 255).astype(np.uint8)
    return cv2.inRange(image, lo, hi) == 0


def _sides_where(mask: np.ndarray) -> str:
    """Which canvas edges a mark runs along ('along the top and left edges'), '' if none."""
    h, w = mask.shape
    band = max(2, min(h, w) // 40)
    sides = [name for name, strip, length in (
        ("top", mask[:band], w), ("bottom", mask[-band:], w), ("left", mask[:, :band], h),
        ("right", mask[:, -band:], h)) if np.count_nonzero(strip.any(axis=0 if name in ("top", "bottom") else 1))
        > 0.6 * length]  # fmt: skip
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
# the fit, carried to the edit's decoded grid


def _source_on_edit(source: Decoded, fit: Fit, shape: tuple[int, int], canvas) -> np.ndarray:
    """The source warped onto the edit's grid (area-shrunk first when the fit shrinks it)."""
    matrix = fit.matrix.copy()
    src = source.rgb
    shrink_by = min(fit.scale_x, fit.scale_y)
    if shrink_by < 0.7:
        factor = shrink_by / 0.9
        size = (max(1, round(src.shape[1] * factor)), max(1, round(src.shape[0] * factor)))
        src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        matrix[:, :2] /= factor
    return cv2.warpAffine(src, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(c) for c in canvas))


def _mask_on_edit(alpha: np.ndarray | None, mask_small: np.ndarray, small_to_edit: np.ndarray, fit: Fit,
                  shape: tuple[int, int], cutoff: int = 128) -> np.ndarray:
    """A source mask on the edit's grid: the warped alpha when there is one, else the warped small mask."""
    if alpha is not None:
        return cv2.warpAffine(alpha, fit.matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR) >= cutoff
    soft = cv2.warpAffine(mask_small.view(np.uint8) * np.uint8(255), small_to_edit[:2], (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR)
    return soft >= 128


def _distance_outside(mask: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the mask (0 inside): one transform serves every dilation."""
    return cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, 3)


def _open(mask: np.ndarray, px: int = 2) -> np.ndarray:
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((px, px), np.uint8)).view(bool)


def measure_reframe(source: Decoded, edited: Decoded, *, canvas: tuple[int, int, int] = (255, 255, 255),
                    ) -> dict[str, Any]:
    """Every reframe check for one edit; keys ``REFRAME_KEYS`` (None where a check could not run)."""
    row: dict[str, Any] = dict.fromkeys(REFRAME_KEYS)
    src_small, src_scale = shrink(source.rgb)
    out_small, out_scale = shrink(edited.rgb)
    alpha_small = None if source.alpha is None else shrink(source.alpha)[0]
    masks = product_masks(src_small, alpha_small)
    strict_s = masks.mask
    out_mask_s = canvas_product(out_small, canvas)
    found = fit_source(strict_s, src_small, out_mask_s, out_small) if strict_s.any() else None
    if found is None:
        row.update(orientation="no product found", product_coverage=0.0, fit_iou=0.0)
        return row
    small_matrix, orientation, iou = found
    fit = to_full(small_matrix, src_scale, out_scale, orientation, iou)
    h, w = edited.rgb.shape[:2]
    out = edited.rgb
    aligned = _source_on_edit(source, fit, (h, w), canvas)
    small_to_edit = np.diag([1 / out_scale, 1 / out_scale, 1.0]) @ small_matrix
    product = _mask_on_edit(source.alpha, strict_s, small_to_edit, fit, (h, w))
    sure = product if source.alpha is not None else _mask_on_edit(None, masks.sure, small_to_edit, fit, (h, w))
    maybe = _mask_on_edit(source.alpha, masks.maybe, small_to_edit, fit, (h, w), cutoff=16)
    tol = max(1, int(np.ceil(FIT_TOLERANCE_SMALL / out_scale)))
    row.update(orientation=orientation, fit_iou=round(iou, 4), aspect_change=fit.aspect_change,
               rotation_deg=fit.rotation_deg)
    frame = (0.0, float(h), 0.0, float(w))
    inside = cv2.distanceTransform(product.view(np.uint8), cv2.DIST_L2, 3)
    outside = _distance_outside(product)
    outside_maybe = _distance_outside(maybe | product)

    # completeness: expected product area (incl. what fell off the canvas) vs what is there
    expected_px = float(np.count_nonzero(strict_s)) * abs(np.linalg.det(small_matrix[:2, :2])) / out_scale**2
    if source.alpha is not None:
        expected_px = float(np.count_nonzero(source.alpha >= 128)) * abs(np.linalg.det(fit.matrix[:, :2]))
    inside_px = float(np.count_nonzero(product))
    core = inside > tol
    canvas_here = ~_off(out, canvas, CANVAS_TOLERANCE)
    src_visible = _off(aligned, canvas, 12)  # a source pixel that is itself (near) canvas cannot be told apart
    sure_core = sure if sure is product else sure & core
    missing = _open(sure_core & core & canvas_here & src_visible, 5)
    off_canvas_px = max(0.0, expected_px - inside_px)
    missing_px = float(np.count_nonzero(missing))
    row["product_coverage"] = max(0.0, 1.0 - (missing_px + off_canvas_px) / max(expected_px, 1.0))
    pbox = _box(product)
    if pbox is not None:
        row["product_fill"] = max((pbox[1] - pbox[0]) / h, (pbox[3] - pbox[2]) / w)
    if missing_px + off_canvas_px > 0.005 * expected_px and pbox is not None:
        row["missing_kind"], row["missing_where"] = _missing_kind(missing, inside, off_canvas_px, missing_px, pbox,
                                                                  (h, w))

    # canvas: outside the product (and what may be product), its ringing margin and the fit tolerance
    margin = tol + max(2, int(np.ceil(RINGING_PX / edited.scale)))
    background = outside_maybe > margin
    n_bg = max(1, int(np.count_nonzero(background)))
    off_all = _off(out, canvas, CANVAS_TOLERANCE)
    off_bg = _open(off_all & background)
    row["bg_off_share"] = float(np.count_nonzero(off_bg) / n_bg)
    largest, where = _marks_where(off_bg, frame, "canvas")
    row["bg_largest_mark"] = largest
    if row["bg_off_share"] > 0.5:
        where = "the whole canvas"
    elif (sides := _sides_where(off_bg)):
        where = sides
    elif np.count_nonzero(off_bg & (outside_maybe <= 3 * margin)) > 0.5 * np.count_nonzero(off_bg):
        where = "around the product"
    row["bg_where"] = where
    if off_bg.any():
        row["bg_colour"] = "RGB " + ",".join(str(int(v)) for v in np.median(out[off_bg], axis=0))
    marks = _open(_off(out, canvas, MARK_LEVELS) & background)
    row["canvas_marks"] = float(np.count_nonzero(marks) / n_bg)
    if marks.any():
        row["canvas_marks_where"] = _sides_where(marks) or _marks_where(marks, frame, "canvas")[1]
    # halo: a light rim hugging the outline, inside the ringing margin, where the source has none
    ring = (outside > tol + 1) & (outside <= margin) & ~maybe
    outline = max(1, int(np.count_nonzero(product & (inside <= 1.5))))
    row["edge_halo_px"] = float(np.count_nonzero(ring & _off(out, canvas, 12)) / outline) * edited.scale

    # duplicates: what stands out beside the product and has its size
    row["product_copies"] = 1 + _copies(out_mask_s, strict_s, small_matrix)

    # product region comparisons at the source's own resolution
    row.update(_compare_product(aligned, out, core, fit, edited.scale))
    return row


def _missing_kind(missing: np.ndarray, inside: np.ndarray, off_canvas_px: float, missing_px: float,
                  pbox: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[str, str]:
    """What kind of loss (cut off by the canvas edge, clipped flat, a hole, a lost part) and where."""
    h, w = shape
    y0, y1, x0, x1 = pbox
    if off_canvas_px >= missing_px:
        sides = [n for n, hit in (("top", y0 <= 1), ("bottom", y1 >= h - 1), ("left", x0 <= 1), ("right", x1 >= w - 1))
                 if hit]
        return "cut off by the canvas edge", f"at the {' and '.join(sides) or 'canvas'} edge"
    mbox = _box(missing)
    assert mbox is not None
    where = f"{place_of(mbox, (y0, y1, x0, x1))} of the product"
    # clipped flat: the loss lies in straight strips along the product box's sides
    depth = max(2, int(0.06 * max(y1 - y0, x1 - x0)))
    strips = {"top": missing[y0:y0 + depth], "bottom": missing[y1 - depth:y1], "left": missing[:, x0:x0 + depth],
              "right": missing[:, x1 - depth:x1]}
    in_strips = np.zeros_like(missing)
    in_strips[y0:y0 + depth] = in_strips[y1 - depth:y1] = True
    in_strips[:, x0:x0 + depth] = in_strips[:, x1 - depth:x1] = True
    sides = [name for name, strip in strips.items() if np.count_nonzero(strip) > 0.1 * missing_px]
    if np.count_nonzero(missing & in_strips) > 0.8 * missing_px and len(sides) >= 2:
        return "clipped flat", f"along the {', '.join(sides)} side{'s' * (len(sides) > 1)}"
    # a hole keeps product all round it; a lost part reaches the outline
    edge_band = (inside > 0) & (inside <= 3 * max(1.0, float(inside.max()) / 50))
    grown = cv2.dilate(missing.view(np.uint8), np.ones((5, 5), np.uint8)).view(bool)
    return ("a hole" if not np.any(grown & edge_band) else "a part missing"), where


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


def _compare_product(aligned: np.ndarray, out: np.ndarray, core: np.ndarray, fit: Fit,
                     decode_scale: int) -> dict[str, Any]:
    """Colour, structure, tone and detail of the product, at the source's resolution (never upsampled)."""
    from airflow_image_catalog.pipeline.quality.metrics import ciede2000, ssim

    row: dict[str, Any] = {}
    box = _box(core)
    if box is None or np.count_nonzero(core) < 64:
        return row
    y0, y1, x0, x1 = box
    a, b, m = aligned[y0:y1, x0:x1], out[y0:y1, x0:x1], core[y0:y1, x0:x1]
    # one source pixel covers `up` edit pixels: compare on a grid where it is one pixel again
    up = max(1.0, min(fit.scale_x, fit.scale_y) / decode_scale)
    if up > 1.05:
        size = (max(8, round(a.shape[1] / up)), max(8, round(a.shape[0] / up)))
        a, b = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b))
        m = cv2.resize(m.view(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
    m = _erode(m, 1)
    if np.count_nonzero(m) < 64:
        return row
    ga, gb = _grey(a), _grey(b)
    row["product_ssim"] = ssim(ga, gb, m)
    row["delta_e_product"] = ciede2000(a, b, m, max_side=160)
    sa, sb = float(ga[m].std()), float(gb[m].std())
    row["contrast_ratio"] = (sb + 1.0) / (sa + 1.0)
    clip = lambda g: float(np.count_nonzero((g[m] >= 254) | (g[m] <= 1)) / np.count_nonzero(m))  # noqa: E731
    row["clipped_gain"] = clip(gb) - clip(ga)
    levels = lambda g: int(np.count_nonzero(np.bincount(np.clip(g[m] + 0.5, 0, 255).astype(np.uint8),  # noqa: E731
                                                        minlength=256)))
    row["tone_levels_ratio"] = levels(gb) / max(1, levels(ga))
    row["detail_ratio"] = _detail_ratio(ga, gb, m)
    # where something appeared on the product that the source does not have: new strong edges
    row.update(_product_marks(ga, gb, m))
    return row


def _band_energy(grey: np.ndarray) -> np.ndarray:
    """Squared difference-of-Gaussians (sigma 0.6 - 1.6): the finest detail a pixel grid holds."""
    return (cv2.GaussianBlur(grey, (0, 0), 0.6) - cv2.GaussianBlur(grey, (0, 0), 1.6)) ** 2


def _detail_ratio(ga: np.ndarray, gb: np.ndarray, m: np.ndarray) -> float | None:
    """Fine-detail energy of the edit / the source in the source's most detailed tiles (1 = kept)."""
    ea, eb = _band_energy(ga), _band_energy(gb)
    t = DETAIL_TILE
    h, w = m.shape
    ny, nx = h // t, w // t
    if ny == 0 or nx == 0:
        return None
    ea, eb, mm = (x[: ny * t, : nx * t].reshape(ny, t, nx, t) for x in (ea, eb, m.astype(np.float32)))
    full = mm.mean(axis=(1, 3)) > 0.99
    if not full.any():
        return None
    tile_a, tile_b = ea.mean(axis=(1, 3))[full], eb.mean(axis=(1, 3))[full]
    top = np.argsort(tile_a)[-DETAIL_TILES:]
    if tile_a[top].sum() < 0.5 * len(top):  # a flat product: no detail to lose
        return None
    return float(tile_b[top].sum() / tile_a[top].sum())


def _product_marks(ga: np.ndarray, gb: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """Share of the product covered by edges the edit added (text, watermark, stamp) and where."""
    def grad(g: np.ndarray) -> np.ndarray:
        return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))

    gs = cv2.dilate(grad(ga), np.ones((5, 5), np.uint8))
    ge = grad(gb)
    new = (ge > 60.0) & (ge > 2.0 * gs + 20.0) & m
    new = cv2.morphologyEx(new.view(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).view(bool) & m
    share = float(np.count_nonzero(new) / max(1, np.count_nonzero(m)))
    box = _box(m)
    where = ""
    if share > 0 and box is not None:
        where = _marks_where(new, tuple(float(v) for v in box), "product")[1]
    return {"product_marks": share, "product_marks_where": where}


__all__ = ["REFRAME_KEYS", "WORK_SIDE", "measure_reframe", "place_of"]
