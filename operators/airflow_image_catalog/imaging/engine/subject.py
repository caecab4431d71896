"""Product segmentation without model weights.

Catalog photos put one product roughly in the middle of a backdrop that is
smooth but not white: a gradient, vignetting, a hot-spot, and a soft shadow
the product casts. Two cues are combined:

1. a background colour model: a low-order polynomial per channel fitted to the
   border band, so uneven lighting is "expected". A pixel that is darker than
   the model but has the same chromaticity is explained as shadow, not subject;
2. GrabCut seeded with that model (border = definite background, strongly
   deviating pixels = probable/definite foreground, shadow-like = probable
   background), which adds edges and colour statistics;
3. on an achromatic backdrop (white, grey), where a grey product part and a shadow share the backdrop's
   chroma, the regions the product's own edges wall off from the backdrop are added (``close_by_edges``).

Everything heavy runs on a copy with the longest side ~512 px, where closed-form matting (Levin,
Lischinski and Weiss, PAMI 2008, by the ``pymatting`` package) then settles the edge in a narrow band
of the GrabCut mask; the result is upsampled and its edge snapped to the full-resolution image with a
guided filter.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._common import dilate, erode
from .errors import NoSubjectError

WORK_SIDE = 512
_BORDER_FRAC = 0.04
#: a border pixel "fits" the smooth backdrop model when every channel is within this many levels
BACKDROP_TOLERANCE = 16.0
#: share of the border that must fit before the engine trusts its cut-out (samples: >= 0.99;
#: full-frame photos such as scikit-image's astronaut, cat, coffee, rocket: 0.08 .. 0.68)
MIN_BACKDROP_FIT = 0.85


def _poly_terms(xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Second-order polynomial basis in normalised coordinates."""
    return np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], axis=-1)


def fit_background(image: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Predict the backdrop colour everywhere from pixels in ``band`` (robust LSQ, 2 rounds)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    terms = _poly_terms(xx / w - 0.5, yy / h - 0.5)
    a = terms[band]
    b = image[band].astype(np.float32)
    keep = np.ones(len(a), bool)
    coef = np.zeros((terms.shape[-1], 3), np.float32)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(a[keep], b[keep], rcond=None)
        resid = np.abs(a @ coef - b).max(axis=1)
        thresh = max(3.0 * float(np.median(resid[keep])) + 2.0, 6.0)
        keep = resid <= thresh
        if keep.sum() < 50:  # the product fills the border: keep the last robust estimate
            keep = np.ones(len(a), bool)
            break
    return np.clip(terms @ coef, 1.0, 255.0)


def backdrop_deviation(image: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (chroma distance, brightness ratio) of pixels vs the predicted backdrop.

    A shadow scales all channels by the same factor: ratio < 1, chroma ~ 0.
    """
    img = image.astype(np.float32)
    ratio = (img * model).sum(-1) / (model * model).sum(-1)
    chroma = np.linalg.norm(img - ratio[..., None] * model, axis=-1)
    return chroma, ratio


def border_band(h: int, w: int) -> np.ndarray:
    b = max(2, int(round(min(h, w) * _BORDER_FRAC)))
    band = np.zeros((h, w), bool)
    band[:b], band[-b:], band[:, :b], band[:, -b:] = True, True, True, True
    return band


def _guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al. guided filter (grey guide), to snap an upsampled mask to image edges."""
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def _keep_main_components(mask: np.ndarray, core: np.ndarray, min_share: float = 0.15) -> np.ndarray:
    """Drop specks: keep the largest component, any at least ``min_share`` of its size, and any that holds
    a pixel of the product's certain core (a logo's separate letters, an i's dot)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    cored = np.bincount(labels[core & mask], minlength=n)[1:] > 0
    keep = np.flatnonzero((areas >= areas.max() * min_share) | cored) + 1
    return np.isin(labels, keep)


def _fill_holes(mask: np.ndarray, bg_like: np.ndarray) -> np.ndarray:
    """Fill enclosed holes unless they look like backdrop (a mug handle's opening stays open)."""
    inv = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = mask.shape
    out = mask.copy()
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue  # touches the border: real background
        hole = labels == i
        if bg_like[hole].mean() < 0.5:
            out |= hole
    return out


def _seed_mask(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut trimap from the backdrop model; also returns the 'looks like backdrop' map."""
    h, w = small.shape[:2]
    band = border_band(h, w)
    model = fit_background(small, band)
    chroma, ratio = backdrop_deviation(small, model)
    noise = float(np.median(chroma[band])) + 1.0
    # chroma relative to the (possibly shadowed) backdrop brightness: shadows stay near 0
    rel = chroma / np.clip(ratio, 0.25, None)
    shadow_like = (rel < max(4.0 * noise, 12.0)) & (ratio >= 0.28) & (ratio < 1.0)
    # brighter than the backdrop, in absolute terms too (ratios explode on dark backdrops)
    excess = (ratio - 1.0) * np.linalg.norm(model, axis=-1)
    strong = (chroma > max(8.0 * noise, 22.0)) | ((ratio > 1.18) & (excess > 40.0)) | (ratio < 0.28)
    weak = (chroma > max(3.5 * noise, 10.0)) | ((ratio > 1.08) & (excess > 20.0)) | (ratio < 0.55)
    weak &= ~shadow_like
    weak |= strong
    bg_like = (chroma < max(3.0 * noise, 8.0)) & (ratio > 0.5) & ((ratio < 1.08) | (excess < 20.0))
    seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    seeds[weak] = cv2.GC_PR_FGD
    core = cv2.erode(strong.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    seeds[core] = cv2.GC_FGD
    # clearly backdrop and not touching anything that deviates: GrabCut may not flip it
    near_weak = cv2.dilate(weak.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    seeds[bg_like & (chroma < max(2.0 * noise, 6.0)) & ~near_weak] = cv2.GC_BGD
    # the border is backdrop where it looks like it: a product touching the frame keeps its edge pixels
    fits = np.abs(small.astype(np.float32) - model).max(axis=-1) < BACKDROP_TOLERANCE
    seeds[band & fits] = cv2.GC_BGD
    seeds[band & ~fits & ~weak] = cv2.GC_PR_BGD
    return seeds, bg_like


def _work_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The downscaled, lightly blurred copy all segmentation statistics run on, and its scale."""
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    sw, sh = max(8, int(round(w * scale))), max(8, int(round(h * scale)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
    return cv2.GaussianBlur(small, (3, 3), 0), scale


def _backdrop_fit(small: np.ndarray) -> float:
    band = border_band(*small.shape[:2])
    model = fit_background(small, band)
    residual = np.abs(small.astype(np.float32) - model).max(axis=-1)[band]
    return float((residual < BACKDROP_TOLERANCE).mean())


def backdrop_fit(image: np.ndarray) -> float:
    """Share (0..1) of the image border that a smooth backdrop (gradient, vignette) explains."""
    return _backdrop_fit(_work_copy(image[..., :3])[0])


def alpha_subject(image: np.ndarray) -> np.ndarray | None:
    """A cut-out's product mask (at least half opaque), or None when ``image`` has no alpha channel.

    :raises NoSubjectError: the image is transparent all over.
    """
    if image.shape[-1] != 4:
        return None
    subject = image[..., 3] >= 128
    if not subject.any():
        raise NoSubjectError("no product found: the image is transparent all over")
    return subject


def subject_mask(image: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the product in a catalog photo (True = subject); a cut-out's alpha."""
    if image.shape[-1] == 4:
        return image[..., 3] >= 128
    small, scale = _work_copy(image)
    return upsample_mask(image, segment_small(small), scale)


def checked_work_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The work copy of a photo with a plain backdrop, and its scale.

    :raises NoSubjectError: with the measured backdrop fit, so the reason is actionable.
    """
    small, scale = _work_copy(image)
    fit = _backdrop_fit(small)
    if fit < MIN_BACKDROP_FIT:
        raise NoSubjectError(
            f"no plain backdrop to cut the product from: only {fit:.0%} of the border matches a smooth "
            f"background (needs {MIN_BACKDROP_FIT:.0%}); this looks like a scene, not a product shot, or a "
            f"product the photo crops over much of its border (shoot it with a margin, or deliver a cut-out PNG)"
        )
    return small, scale


def no_product() -> NoSubjectError:
    return NoSubjectError("no product found: nothing stands out from the backdrop")


def find_subject(image: np.ndarray) -> np.ndarray:
    """Like :func:`subject_mask`, but refuses photos without a plain backdrop or without a product.

    A cut-out (RGBA) needs no segmentation: its alpha is the product's exact mask.

    :raises NoSubjectError: with the measured backdrop fit, so the reason is actionable.
    """
    cutout = alpha_subject(image)
    if cutout is not None:
        return cutout
    small, scale = checked_work_copy(image)
    fg = segment_small(small)
    if not fg.any():
        raise no_product()
    return upsample_mask(image, fg, scale)


def resolve_subject(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """A caller-supplied mask wins (it may come from a better segmenter); else segment, checked."""
    return mask.astype(bool) if mask is not None else find_subject(image)


#: the trimap around the segmentation's edge (work copy pixels): certain product inside, certain
#: backdrop outside, a band the matting decides between
CORE_ERODE_PX = 2
BAND_DILATE_PX = 3
SNAP = 0.05  # matte values this close to 0 or 1 are snapped


def refine_edge(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Closed-form matting of the band around the mask's edge: the product's soft matte (float32 0..1).

    The band is narrow, so GrabCut decides what is product and the matting where exactly its edge runs:
    anti-aliasing, soft focus and thin strands that the binary cut would have clipped or thickened, and
    the fringe of backdrop it would have kept (samples: IoU min 0.971 -> 0.995).
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


#: a backdrop whose channels differ by less than this (levels) has no colour of its own: white, grey, a grey sky
ACHROMATIC_SPREAD = 12.0
#: Canny's hysteresis thresholds (grey levels, on the work copy) for the edges that wall a product's parts in
EDGE_LOW, EDGE_HIGH = 20, 60
#: a region off the backdrop model is a cast shadow when the backdrop borders at least this share of its outline
#: (the gallery's shadows: 0.22-0.49; the ribbon's parts: 0.00-0.12)
SHADOW_CONTACT = 0.15


def close_by_edges(small: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """On an achromatic backdrop, add to GrabCut's mask the regions the product's own edges wall in.

    On white, grey or a grey sky a silver ribbon's shaded parts have the backdrop's colour, so the colour
    model and the shadow test (a chroma test) take them for backdrop or shadow. What tells them apart is
    edges: a product part is walled in by strong edges (a ribbon's specular borders, its seams with the
    box), while a cast shadow fades into the backdrop with no edge. Outside the mask and the edges, a
    region that fits the backdrop model is backdrop when it joins the border's backdrop, a window onto it
    when walled off but as close to the model as the border's backdrop is (a bow's or a handle's opening),
    else a light product part; a region that does not fit is a shadow when the backdrop borders much of
    its outline (``SHADOW_CONTACT``), else a product part, reached at most through a gap in its edges.
    On a coloured backdrop chroma already tells them apart: the mask is returned as it is.
    """
    h, w = fg.shape
    band = border_band(h, w)
    model = fit_background(small, band)
    mean = model[band].mean(axis=0)
    if not fg.any() or float(mean.max() - mean.min()) >= ACHROMATIC_SPREAD:
        return fg
    residual = np.abs(small.astype(np.float32) - model).max(axis=-1)
    fits = residual < BACKDROP_TOLERANCE
    noise = float(np.percentile(residual[band & fits], 95)) if (band & fits).any() else 0.0
    window = residual < max(noise + 2.0, 4.0)  # as close to the model as the border's backdrop is
    edges = dilate(cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), EDGE_LOW, EDGE_HIGH) > 0, 1)
    free = ~(fg | edges)
    n, labels = cv2.connectedComponents((free & fits).astype(np.uint8), connectivity=4)
    joined = np.zeros(n, bool)
    joined[np.unique(labels[band & fits & free])] = True
    joined[0] = False  # label 0: everything that is not a fitting free pixel
    backdrop = joined[labels]
    area = np.bincount(labels.ravel(), minlength=n)
    opening = np.bincount(labels[window], minlength=n) >= 0.5 * np.maximum(area, 1)
    light = ~joined & ~opening
    light[0] = False
    added = light[labels]
    unfit = free & ~fits
    n, labels = cv2.connectedComponents(unfit.astype(np.uint8), connectivity=4)
    outline = dilate(unfit, 1) & ~unfit
    neighbour = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    contact = np.bincount(neighbour[outline & backdrop], minlength=n) / np.maximum(
        np.bincount(neighbour[outline], minlength=n), 1)
    part = contact < SHADOW_CONTACT
    part[0] = False
    added |= part[labels] & unfit
    if not added.any():
        return fg
    grown = fg | added
    closed = cv2.morphologyEx(grown.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
    return grown | (edges & closed & dilate(added, 2))  # the walls between the parts and the mask


def segment_small(small: np.ndarray) -> np.ndarray:
    """The product mask on the work copy: GrabCut's, parts walled in by edges added, the edge matted."""
    fg = close_by_edges(small, grabcut_small(small))
    return refine_edge(small, fg) >= 0.5 if fg.any() else fg


def grabcut_small(small: np.ndarray) -> np.ndarray:
    """GrabCut's product mask on the work copy (seeded by the backdrop model, cleaned)."""
    seeds, bg_like = _seed_mask(small)
    if not (seeds == cv2.GC_PR_FGD).any() and not (seeds == cv2.GC_FGD).any():
        return np.zeros(small.shape[:2], bool)
    gc = seeds.copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0x5EED)  # GrabCut's k-means init draws from OpenCV's RNG: make results reproducible
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate seeds (e.g. one GMM class empty): fall back to the colour model
        gc = seeds
    fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    fg = _keep_main_components(fg, seeds == cv2.GC_FGD)
    return _fill_holes(fg, bg_like)


def upsample_mask(image: np.ndarray, fg: np.ndarray, scale: float) -> np.ndarray:
    """A work-copy mask at the image's full size, its edge snapped to full-resolution detail."""
    if scale >= 1:
        return fg
    h, w = image.shape[:2]
    soft = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    guide = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    radius = max(2, int(round(1.5 / scale)))
    refined = _guided_filter(guide, soft, radius, 1e-3)
    out = refined > 0.5
    # the guided filter only moves the boundary a little: never far from the low-res answer
    band = cv2.dilate(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) - cv2.erode(
        fg.astype(np.uint8), np.ones((3, 3), np.uint8)
    )
    band_full = cv2.resize(band, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return np.where(band_full, out, soft > 0.5)
