"""Where the source product went in a reframed edit: a similarity fit found from the images alone.

A reframed edit (``white_background`` + ``fit_canvas``, a model's "put it on white") scales and
moves the product; a faulty one also loses parts of it, mirrors or rotates it, stretches it, or
adds marks beside it. The fit must survive all of that, since it is what every later check
compares through, so it is chosen among candidates rather than read off one bounding box:

1. orientation: the eight flips / quarter turns of the source, each placed on the edit's product
   box, scored by silhouette overlap (IoU) and grey-level correlation; the source's own
   orientation wins unless another is clearly better (that is an orientation defect);
2. placement: scale from the box width, the height or both, anchored on each side in turn (a
   part lost at one end leaves the opposite sides where they were), on the whole product or on
   its largest piece (a duplicate or a badge beside it must not stretch the box);
3. refinement: OpenCV's ECC image alignment (affine, ``cv2.findTransformECC``, Evangelidis &
   Psarakis 2008; https://docs.opencv.org/4.x/dc/d6b/group__video__track.html) on grey copies,
   kept only when it improves the overlap. Its affine part also measures stretch and rotation; it also
   starts from the source's box laid on the edit's box (each axis scaled apart) when that overlaps
   clearly better, since a texture that runs along the stretch gives it nothing to pull by.

Everything runs on the <= 256 px copies ``_product`` segments, in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: the source's own orientation is kept unless another scores this much better
ORIENTATION_MARGIN = 0.06
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)


@dataclass(frozen=True)
class Fit:
    """Source pixel -> edit pixel, both at full size (2x3 affine), and what it says about the product."""

    matrix: np.ndarray
    orientation: str
    iou: float
    scale_x: float
    scale_y: float
    rotation_deg: float

    @property
    def aspect_change(self) -> float:
        """How much the proportions changed (|sx / sy - 1|; 0 = kept)."""
        return abs(self.scale_x / self.scale_y - 1.0)


# name, and the map of (x, y) on an (h, w) image onto the oriented image, as a 3x3 matrix
def _orientations(h: int, w: int) -> list[tuple[str, np.ndarray]]:
    def m(a, b, c, d, e, f) -> np.ndarray:
        return np.array([[a, b, c], [d, e, f], [0, 0, 1]], np.float64)

    return [
        ("as source", m(1, 0, 0, 0, 1, 0)),
        ("mirrored left to right", m(-1, 0, w - 1, 0, 1, 0)),
        ("upside down (mirrored)", m(1, 0, 0, 0, -1, h - 1)),
        ("rotated 180 degrees", m(-1, 0, w - 1, 0, -1, h - 1)),
        ("rotated 90 degrees", m(0, 1, 0, -1, 0, w - 1)),
        ("rotated 90 degrees", m(0, -1, h - 1, 1, 0, 0)),
        ("rotated and mirrored", m(0, 1, 0, 1, 0, 0)),
        ("rotated and mirrored", m(0, -1, h - 1, -1, 0, w - 1)),
    ]


def _box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return float(ys[0]), float(ys[-1] + 1), float(xs[0]), float(xs[-1] + 1)


def _warp(image: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], *, nearest: bool = False,
          border: float = 0) -> np.ndarray:
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix[:2], (shape[1], shape[0]), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def _ncc(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    x, y = a[region], b[region]
    if x.size < 16:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0


def _place(src_box, dst_box, how: str) -> np.ndarray:
    """Similarity (3x3) putting the source box on the destination box: scale by ``how``, anchor by ``how``."""
    sy0, sy1, sx0, sx1 = src_box
    dy0, dy1, dx0, dx1 = dst_box
    sw, sh, dw, dh = sx1 - sx0, sy1 - sy0, dx1 - dx0, dy1 - dy0
    fit, anchor = how.split(":")
    s = {"w": dw / sw, "h": dh / sh, "both": float(np.sqrt(dw * dh / (sw * sh)))}[fit]
    tx = {"left": dx0 - s * sx0, "right": dx1 - s * sx1}.get(anchor, (dx0 + dx1) / 2 - s * (sx0 + sx1) / 2)
    ty = {"top": dy0 - s * sy0, "bottom": dy1 - s * sy1}.get(anchor, (dy0 + dy1) / 2 - s * (sy0 + sy1) / 2)
    if fit == "w" and anchor in ("top", "bottom", "mid"):
        tx = dx0 - s * sx0
    if fit == "h" and anchor in ("left", "right", "mid"):
        ty = dy0 - s * sy0
    return np.array([[s, 0, tx], [0, s, ty], [0, 0, 1]], np.float64)


_PLACEMENTS = ("both:mid", "w:top", "w:bottom", "w:mid", "h:left", "h:right", "h:mid")
#: a fit that stretches or turns the product is kept only when it overlaps this much better (IoU)
STRETCH_MARGIN = 0.04


def _box_on_box(src_box, dst_box) -> np.ndarray:
    """Affine (3x3) putting the source box exactly on the destination box, each axis scaled on its own."""
    sy0, sy1, sx0, sx1 = src_box
    dy0, dy1, dx0, dx1 = dst_box
    kx, ky = (dx1 - dx0) / max(sx1 - sx0, 1e-9), (dy1 - dy0) / max(sy1 - sy0, 1e-9)
    return np.array([[kx, 0, dx0 - kx * sx0], [0, ky, dy0 - ky * sy0], [0, 0, 1]], np.float64)


def _targets(out_mask: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes the product may occupy: everything that stands out, and its largest piece."""
    boxes = [_box(out_mask)]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(out_mask.view(np.uint8), connectivity=8)
    if n > 2:
        i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = stats[i, :4]
        boxes.append((float(y), float(y + h), float(x), float(x + w)))
    return [b for b in boxes if b is not None]


def _on_white(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey[~mask] = 255.0
    return grey


def _distortion(matrix: np.ndarray) -> float:
    """How far a 2x2 linear part is from a uniform scale times a dihedral turn (0 = a similarity)."""
    a = matrix[:2, :2]
    sx, sy = np.hypot(a[0, 0], a[1, 0]), np.hypot(a[0, 1], a[1, 1])
    skew = abs(a[0, 0] * a[0, 1] + a[1, 0] * a[1, 1]) / max(sx * sy, 1e-9)
    return float(abs(sx / max(sy, 1e-9) - 1.0) + skew)


#: the largest piece alone is the product only when it fits clearly better than everything that stands out
PIECE_MARGIN = 0.1


def _oriented_box(orient: np.ndarray, box) -> tuple[float, float, float, float]:
    corners = orient @ np.array([[box[2], box[3]], [box[0], box[1]], [1, 1]])
    xs, ys = sorted(corners[0]), sorted(corners[1])
    return ys[0], ys[1], xs[0], xs[1]


def fit_source(src_mask: np.ndarray, src_rgb: np.ndarray, out_mask: np.ndarray, out_rgb: np.ndarray,
               ) -> tuple[np.ndarray, str, float] | None:
    """Best (3x3 source-small -> edit-small matrix, orientation, IoU) for two small copies, or None.

    Each target (everything that stands out, its largest piece) gets its own orientation and
    placement, scored against what stands out inside that target's box; the largest piece wins
    only by ``PIECE_MARGIN`` (two copies side by side, a badge beside the product).
    """
    src_box, targets = _box(src_mask), _targets(out_mask)
    if src_box is None or not targets:
        return None
    shape = out_mask.shape
    src_grey, out_grey = _on_white(src_rgb, src_mask), _on_white(out_rgb, np.ones(shape, bool))
    src_m8 = src_mask.view(np.uint8)
    h, w = src_mask.shape
    orientations = _orientations(h, w)

    def score(matrix: np.ndarray, seen: np.ndarray, grey: bool = True) -> tuple[float, float]:
        warped = _warp(src_m8, matrix, shape, nearest=True).view(bool)
        if not grey:
            return _iou(warped, seen), 0.0
        return _iou(warped, seen), _ncc(_warp(src_grey, matrix, shape, border=255.0), out_grey, warped | seen)

    fits = []
    for target in targets:
        y0, y1, x0, x1 = (int(v) for v in target)
        seen = np.zeros_like(out_mask)
        seen[y0:y1, x0:x1] = out_mask[y0:y1, x0:x1]
        # 1. orientation
        best_orient: tuple[float, str, np.ndarray] | None = None
        for name, orient in orientations:
            iou, ncc = score(_place(_oriented_box(orient, src_box), target, "both:mid") @ orient, seen)
            value = (iou + ncc) / 2 + (ORIENTATION_MARGIN if name == "as source" else 0.0)
            if best_orient is None or value > best_orient[0]:
                best_orient = (value, name, orient)
        assert best_orient is not None
        _, orientation, orient = best_orient
        # 2. placement
        oriented = _oriented_box(orient, src_box)
        iou, matrix = max(((score(m, seen, grey=False)[0], m) for m in
                           (_place(oriented, target, how) @ orient for how in _PLACEMENTS)), key=lambda t: t[0])
        fits.append((iou, matrix, orientation, seen, _box_on_box(oriented, target) @ orient))
    iou, matrix, orientation, seen, box_on_box = fits[0]
    if len(fits) > 1 and fits[1][0] > iou + PIECE_MARGIN:
        iou, matrix, orientation, seen, box_on_box = fits[1]

    # 3. ECC refinement (warp maps template = edit coords to input = source coords). An affine fit
    # may also stretch or turn the product: it is kept only when that buys a clearly better overlap
    # (a stretched edit), not when it merely spreads one copy over two or over a lost part. ECC starts
    # from the best placement and, where the box on the box overlaps clearly better, from that too: a
    # product whose texture runs along the stretch (a brushed can) gives ECC nothing to pull it by.
    starts = [matrix]
    if score(box_on_box, seen, grey=False)[0] >= iou + STRETCH_MARGIN:
        starts.append(box_on_box)
    _, ncc = score(matrix, seen)
    best: tuple[float, float, np.ndarray] | None = None
    for start in starts:
        try:
            inverse = np.linalg.inv(start)[:2].astype(np.float32)
            _, warp = cv2.findTransformECC(out_grey, src_grey, inverse, cv2.MOTION_AFFINE, _ECC_CRITERIA, None, 3)
            refined = np.linalg.inv(np.vstack([warp.astype(np.float64), [0, 0, 1]]))
        except (cv2.error, np.linalg.LinAlgError):
            continue  # ECC did not converge from here
        refined_iou, refined_ncc = score(refined, seen)
        bend = _distortion(refined) - _distortion(matrix)
        # judged by the grey levels ECC aligned (a light rim around the edit inflates the silhouette, not them)
        if refined_ncc >= ncc - 0.005 and (bend < 0.03 or refined_iou >= iou + STRETCH_MARGIN):
            if best is None or refined_ncc > best[1]:
                best = (refined_iou, refined_ncc, refined)
    if best is not None:
        iou, matrix = best[0], best[2]
    return matrix, orientation, score(matrix, out_mask, grey=False)[0]


def to_full(small: np.ndarray, src_scale: float, out_scale: float, orientation: str, iou: float) -> Fit:
    """The small-copy fit at full size, with its scale and rotation read off the affine part."""
    s_src = np.diag([src_scale, src_scale, 1.0])
    s_out_inv = np.diag([1.0 / out_scale, 1.0 / out_scale, 1.0])
    full = s_out_inv @ small @ s_src
    a = full[:2, :2]
    u, sv, vt = np.linalg.svd(a)
    rot = u @ vt
    # scale along the source's own axes (a stretch keeps the axes; a flip / quarter turn is in orientation)
    sx, sy = float(np.hypot(a[0, 0], a[1, 0])), float(np.hypot(a[0, 1], a[1, 1]))
    angle = float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0])))
    angle = (angle + 45.0) % 90.0 - 45.0  # the quarter turns are the orientation's
    del sv
    return Fit(full[:2].copy(), orientation, iou, sx, sy, angle)
