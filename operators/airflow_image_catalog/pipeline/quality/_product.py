"""What the product is, decided by the gate itself (never by the editor's segmentation).

A transparent product shot says it exactly: its alpha channel. Otherwise the gate fits its
own backdrop model: a smooth (quadratic) colour surface fitted to the image border with the
outliers trimmed (a product that touches the frame covers part of the border), and calls a
pixel product when it is not that backdrop, nor a shadow of it (darker with the same
chromaticity). The same model finds the product on an edited canvas of any colour, which is
what lets the gate align a light-grey or blotchy canvas instead of mistaking it for product.
Everything runs on a copy of <= ``WORK_SIDE`` px; it costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: longest side of the copy segmentation runs on
WORK_SIDE = 256
#: border band the backdrop is fitted on, as a share of the shorter side
BAND_SHARE = 0.04
#: a border pixel within this many levels of a backdrop seed's fit belongs to the backdrop
INLIER_LEVELS = 24.0
#: weight of the border fit in the local backdrop model (where backdrop pixels are a blur's weight of 1)
PRIOR_WEIGHT = 0.15
#: strictness of "certainly product" (completeness is judged there) and of "may be product"
SURE, LOOSE = 1.6, 0.6
#: components smaller than this share of the largest are specks, not product parts
MIN_PART_SHARE = 0.1
#: a cut-out's alpha at or above this is the source's own content, product or not (the soft drop shadow
#: a product artwork paints into its alpha too): the gate never calls it a background fault of the edit
ALPHA_SEEN = 1


def channel_max(x: np.ndarray) -> np.ndarray:
    """``x.max(axis=-1)`` over a short channel axis, the same values ~20x faster (numpy reduces a
    trailing axis of 3 one tiny row at a time)."""
    out = x[..., 0]
    for c in range(1, x.shape[-1]):
        out = np.maximum(out, x[..., c])
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel dot product over the channel axis, summed in channel order as ``einsum`` does, faster."""
    out = a[..., 0] * b[..., 0]
    for c in range(1, a.shape[-1]):
        out += a[..., c] * b[..., c]
    return out


@dataclass(frozen=True)
class Backdrop:
    """A fitted backdrop: the model image (float32 RGB, the copy's size) and its noise level."""

    model: np.ndarray
    noise: float


def shrink(image: np.ndarray, side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """An area-averaged copy with longest side <= ``side`` and the factor small / original."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w


def border_band(h: int, w: int, share: float = BAND_SHARE) -> np.ndarray:
    b = max(2, round(share * min(h, w)))
    band = np.ones((h, w), bool)
    band[b:-b, b:-b] = False
    return band


@lru_cache(maxsize=8)
def _design(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xx / max(w - 1, 1) - 0.5, yy / max(h - 1, 1) - 0.5
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=-1)


def fit_backdrop(image: np.ndarray, band: np.ndarray | None = None) -> Backdrop:
    """Least-squares quadratic surface per channel on the border pixels the backdrop owns.

    A product touching the frame covers part of the border (a colour wheel on black touches all
    four sides), so the fit starts from the seed that most of the border agrees with: the whole
    band, the four corners together, or one corner (a constant), whichever leaves the most band
    pixels within ``INLIER_LEVELS`` of it; then refits on those pixels, trimming the worst.
    """
    h, w = image.shape[:2]
    band = border_band(h, w) if band is None else band
    terms = _design(h, w)
    a = terms[band]
    b = image[band].astype(np.float32)
    ys, xs = np.nonzero(band)
    c = max(3, round(0.12 * min(h, w)))
    corner_ids = [((ys < c) & (xs < c)), ((ys < c) & (xs >= w - c)), ((ys >= h - c) & (xs < c)),
                  ((ys >= h - c) & (xs >= w - c))]
    seeds = [(np.ones(len(a), bool), 6), (np.logical_or.reduce(corner_ids), 3)] + [(ids, 1) for ids in corner_ids]
    best_keep, best_count = np.ones(len(a), bool), -1
    for ids, n_terms in seeds:
        if np.count_nonzero(ids) < 2 * n_terms:
            continue
        coef, *_ = np.linalg.lstsq(a[ids, :n_terms], b[ids], rcond=None)
        keep = channel_max(np.abs(a[:, :n_terms] @ coef - b)) <= INLIER_LEVELS
        if np.count_nonzero(keep) > best_count:
            best_keep, best_count = keep, int(np.count_nonzero(keep))
    keep = best_keep if best_count >= 0.15 * len(a) else np.ones(len(a), bool)
    coef = np.zeros((6, 3), np.float32)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(a[keep], b[keep], rcond=None)
        err = channel_max(np.abs(a @ coef - b))
        keep = keep & (err <= max(np.quantile(err[keep], 0.8), 3.0))
    model = (terms.reshape(-1, 6) @ coef).reshape(h, w, 3).astype(np.float32)
    noise = float(np.median(np.abs(b[keep] - (a[keep] @ coef)))) + 1.0
    return Backdrop(np.clip(model, 0, 255), noise)


@dataclass(frozen=True)
class Deviation:
    """How each pixel departs from a backdrop: chromaticity, brightness ratio, largest channel difference."""

    chroma: np.ndarray
    ratio: np.ndarray
    diff: np.ndarray
    noise: float

    @classmethod
    def of(cls, image: np.ndarray, backdrop: Backdrop) -> Deviation:
        img = image.astype(np.float32)
        model = backdrop.model
        mm = _dot(model, model) + 1e-3
        ratio = _dot(img, model) / mm
        chroma = np.sqrt(_dot(d := img - ratio[..., None] * model, d))
        return cls(chroma, ratio, channel_max(np.abs(img - model)), backdrop.noise)

    def product(self, strictness: float = 1.0) -> np.ndarray:
        """Neither the backdrop nor its shadow (same chromaticity, darker, but not beyond any shadow).

        ``strictness`` < 1 lowers the thresholds: "could be product" rather than "is product".
        """
        step = strictness * max(4.0 * self.noise, 12.0)
        brighter = (self.ratio > 1.0) & (self.diff > step)
        darker = (self.ratio < 0.35 / strictness) & (self.diff > step)  # beyond any shadow
        return (self.chroma > strictness * max(5.0 * self.noise, 14.0)) | darker | brighter


def not_backdrop(image: np.ndarray, backdrop: Backdrop, strictness: float = 1.0) -> np.ndarray:
    """Pixels that are neither the backdrop nor its shadow (see ``Deviation.product``)."""
    return Deviation.of(image, backdrop).product(strictness)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Specks opened away, small gaps closed, parts below ``MIN_PART_SHARE`` of the largest dropped."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 2:
        return m.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= MIN_PART_SHARE * areas.max()) + 1
    return np.isin(labels, keep)


def local_backdrop(image: np.ndarray, backdrop_px: np.ndarray, prior: Backdrop) -> Backdrop:
    """The backdrop as it is around the product: a normalised convolution of the pixels called backdrop.

    A quadratic surface misses the blotches and hot spots of a real backdrop; spreading the
    backdrop pixels' own colours (Gaussian-weighted, sigma 6 % of the side) follows them, and
    under the product it interpolates from all sides.
    """
    h, w = image.shape[:2]
    coarse = (max(4, w // 4), max(4, h // 4))  # the blur is wide: a quarter-size copy loses nothing
    sigma = 0.06 * max(coarse)
    weight = cv2.resize(backdrop_px.astype(np.float32), coarse, interpolation=cv2.INTER_AREA)
    colour = cv2.resize(image.astype(np.float32) * backdrop_px[..., None], coarse, interpolation=cv2.INTER_AREA)
    weight, colour = cv2.GaussianBlur(weight, (0, 0), sigma), cv2.GaussianBlur(colour, (0, 0), sigma)
    # far from any backdrop pixel (under the product) the smooth border fit takes over: spreading
    # from one side only would paint a hot spot into a mug's handle opening
    quad = cv2.resize(prior.model, coarse, interpolation=cv2.INTER_AREA)
    k = PRIOR_WEIGHT
    model = (colour + k * quad) / (weight + k)[..., None]
    return Backdrop(cv2.resize(model, (w, h), interpolation=cv2.INTER_LINEAR), prior.noise)


@dataclass(frozen=True)
class SourceProduct:
    """The source product on a small copy at three confidences.

    ``sure`` must all be in the edit (completeness is judged there), ``mask`` is what the fit
    aligns, ``maybe`` may be product (the gate never calls a pixel it is unsure of a background
    fault).
    """

    sure: np.ndarray
    mask: np.ndarray
    maybe: np.ndarray
    backdrop: Backdrop | None = None  # the local backdrop model the masks were cut against (None: alpha)


def segment_small(small: np.ndarray) -> SourceProduct:
    """The product masks of a small copy on its backdrop: a border fit, then the local backdrop, twice."""
    border_fit = backdrop = fit_backdrop(small)
    mask = clean_mask(not_backdrop(small, backdrop))
    for _ in range(2):
        backdrop = local_backdrop(small, ~_grow(mask, 2), border_fit)
        deviation = Deviation.of(small, backdrop)
        mask = clean_mask(deviation.product())
    reach = max(2, max(small.shape) // 40)
    loose = grow_within(mask, _grow(deviation.product(LOOSE), 1), reach)
    notches = _hull(mask) & _grow(mask, 3 * reach)  # a bite the model took out of a shaded edge
    sure = clean_mask(deviation.product(SURE)) & mask
    return SourceProduct(sure, mask, mask | loose | notches, backdrop)


def _hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull of each part."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    for contour in contours:
        cv2.fillConvexPoly(out, cv2.convexHull(contour), 1)
    return out.astype(bool)


def grow_within(seed: np.ndarray, allowed: np.ndarray, px: int) -> np.ndarray:
    """``seed`` grown up to ``px`` steps through ``allowed`` pixels (a geodesic dilation).

    A product's thin rim is often only "could be product" (a grey edge on a beige backdrop) and
    it can sit a few pixels beyond the fitted mask, across a shaded fold the model calls shadow
    (a gift box's ribbon loop); growing through the loose pixels reaches it, growing blindly would
    reach the backdrop.
    """
    out = seed.astype(np.uint8)
    gate = allowed.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(px):
        grown = cv2.dilate(out, kernel) & gate | out
        if np.array_equal(grown, out):
            break
        out = grown
    return out.astype(bool)


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def product_masks(small: np.ndarray, small_alpha: np.ndarray | None = None) -> SourceProduct:
    """The product on a small copy (``shrink``).

    From the alpha channel when there is one (exact: the opaque pixels; any coverage may be
    product), else from the gate's backdrop model (``segment_small``).
    """
    if small_alpha is not None:
        mask = clean_mask(small_alpha >= 128)
        return SourceProduct(mask, mask, mask | (small_alpha >= ALPHA_SEEN))
    return segment_small(small)


def canvas_product(small: np.ndarray, canvas: tuple[int, int, int], tolerance: float = 10.0) -> np.ndarray:
    """What stands out on an edited canvas (small copy): off the canvas colour *and* off the canvas's own border model.

    Against the declared colour alone a light-grey canvas would be all product; against the border
    model alone a white product part would vanish into a white canvas. Both must hold.
    """
    off_canvas = channel_max(np.abs(small.astype(np.int16) - np.asarray(canvas, np.int16))) > tolerance
    band = border_band(*small.shape[:2])
    if np.count_nonzero(off_canvas[band]) <= 0.1 * np.count_nonzero(band):  # the border is the canvas: no model
        return clean_mask(off_canvas)
    backdrop = fit_backdrop(small, band)
    flat = float(np.abs(backdrop.model - np.asarray(canvas, np.float32)).max()) <= tolerance
    return clean_mask(off_canvas if flat else off_canvas & not_backdrop(small, backdrop))
