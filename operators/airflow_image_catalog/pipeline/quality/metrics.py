"""Quality-gate metrics: pure, weight-free functions on RGB uint8 arrays and encoded bytes.

Every metric catches one known failure mode of AI edits (see DESIGN.md, "Known
failure modes"): masks not respected (preserved-region SSIM / PSNR / CIEDE2000), seams,
under-filled frames, blur, product drift, JPEG damage and
garbled text. ``compute_metrics`` returns one flat row per image with the same keys
for every intent, so a run's rows form a DataFrame that a GX suite (a quality profile,
``operators/airflow_image_catalog/pipeline/quality/profiles/*.yaml``, with the measured thresholds) can validate.

Regions are boolean masks and are always applied by boolean indexing: zeroing the
pixels outside a region would add identical pixels to both images and inflate the
scores. No Airflow import here, and no model weights.
"""

from __future__ import annotations

import difflib
import io
import re
import shutil
import warnings
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageCms

from airflow_image_catalog.imaging.engine._common import bbox, dilate, erode
from airflow_image_catalog.pipeline.quality.reframe import REFRAME_KEYS

#: a canvas pixel belongs to the product when any channel differs from the background by more than this
CANVAS_TOLERANCE = 8
#: the background of a canvas is everything this many px away from the product (anti-aliased edge, feather)
BACKGROUND_MARGIN_PX = 3

__all__ = [
    "INTENTS",
    "METRIC_KEYS",
    "PSNR_CAP",
    "blockiness",
    "ciede2000",
    "compression_label",
    "compute_metrics",
    "file_facts",
    "jpeg_quality",
    "ocr_similarity",
    "phash",
    "phash_distance",
    "product_bbox",
    "product_drift",
    "product_fill",
    "psnr",
    "seam_score",
    "sharpness_ratio",
    "ssim",
]

INTENTS = ("reframe", "masked", "global")
Region = np.ndarray | None

#: PSNR of identical regions is infinite; report this instead so DataFrames and GX stay numeric
PSNR_CAP = 100.0
#: the edit mask is dilated by this much before "outside the mask" counts as preserved
#: (the engine's remove_object grows its mask by 4 px; generative models feather a few px)
MASK_DILATE_PX = 6
#: half-width of the boundary band the seam score looks at, on each side of the edit boundary
SEAM_BAND_PX = 4
#: residual error (px, edited coords) of the bbox alignment of reframed edits, measured on the samples
ALIGN_TOLERANCE_PX = 3
#: blockiness: an averaged step larger than this (levels) is content, not a compression artefact
BLOCK_STEP_CAP = 6.0
#: blockiness: block edges must step this much more (grey levels, averaged) than the pixels inside blocks to be
#: seen (measured: quality 92 of a smooth sweep 0.10-0.21 more, of the procedural samples 0.16-0.17; quality 15
#: of them 0.36-1.5 more)
BLOCK_VISIBLE = 0.25
#: CIEDE2000 in compute_metrics runs on an area-downsampled copy with this longest side
DELTA_E_SIDE = 160

# Gaussian-window SSIM exactly as skimage's structural_similarity(gaussian_weights=True,
# sigma=1.5, use_sample_covariance=False, data_range=255): truncate=3.5 -> 11x11 window
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


# ---------------------------------------------------------------------------------------------
# shared helpers


def _grey(image: np.ndarray) -> np.ndarray:
    """float32 luma (BT.601, what cv2 and most SSIM tools use) of an RGB or grey array."""
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image.astype(np.float32)


def _full(shape: tuple[int, ...], region: Region) -> np.ndarray:
    """The region as a bool mask of ``shape[:2]`` (everything when None)."""
    if region is None:
        return np.ones(shape[:2], bool)
    region = np.asarray(region, bool)
    if region.shape != tuple(shape[:2]):
        raise ValueError(f"region shape {region.shape} does not match image shape {tuple(shape[:2])}")
    return region


def _crop_box(region: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """Slices of the region's bounding box grown by ``pad`` (clipped), or None for an empty region."""
    box = bbox(region)
    if box is None:
        return None
    h, w = region.shape
    y0, y1, x0, x1 = box
    return slice(max(0, y0 - pad), min(h, y1 + pad)), slice(max(0, x0 - pad), min(w, x1 + pad))


def _downsample(image: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _downsample_region(region: np.ndarray, max_side: int | None) -> np.ndarray:
    """A downsampled pixel is in the region only when its whole footprint was (no boundary mixing)."""
    if max_side is None or max(region.shape) <= max_side:
        return region
    return _downsample(region.astype(np.float32), max_side) > 0.999


# ---------------------------------------------------------------------------------------------
# fidelity on a region: SSIM, PSNR, CIEDE2000


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = 2 * _SSIM_RADIUS + 1

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (k, k), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my, exx, eyy, exy = blur(x), blur(y), blur(x * x), blur(y * y), blur(x * y)
    mxy = mx * my
    mm = mx * mx
    mm += my * my
    num = 2 * mxy + _SSIM_C1
    num *= 2 * (exy - mxy) + _SSIM_C2
    den = mm + _SSIM_C1
    den *= (exx + eyy) - mm + _SSIM_C2
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, region: Region = None) -> float:
    """Mean grey SSIM (Gaussian window, sigma 1.5) over ``region``, by boolean indexing.

    Matches skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)`` on the same grey image: the map is
    computed with cv2.GaussianBlur (reflect border) and, like skimage, the outer 5 px
    (the window radius) are left out. Only the region's bounding box (+ window radius)
    is filtered, which gives the same map values as filtering the whole image.
    """
    ga, gb = _grey(a), _grey(b)
    valid = np.zeros(ga.shape, bool)
    r = _SSIM_RADIUS
    valid[r:-r, r:-r] = True
    valid &= _full(ga.shape, region)
    n = int(np.count_nonzero(valid))
    if n == 0:
        return float("nan")
    # a pixel whose whole window is identical in both images has SSIM exactly 1: only filter
    # around the pixels that differ (an in-place edit changes a small part of the frame)
    k = 2 * r + 1
    touched = cv2.dilate((ga != gb).view(np.uint8), np.ones((k, k), np.uint8)).view(bool) & valid
    box = _crop_box(touched, r)
    if box is None:
        return 1.0
    inside = valid[box]
    s_map = _ssim_map(ga[box], gb[box])
    return float((s_map[inside].sum(dtype=np.float64) + (n - np.count_nonzero(inside))) / n)


def psnr(a: np.ndarray, b: np.ndarray, region: Region = None) -> float:
    """PSNR in dB (data range 255) over the region's pixels, all channels; capped at ``PSNR_CAP``."""
    m = _full(a.shape, region)
    n = int(np.count_nonzero(m))
    if n == 0:
        return float("nan")
    sse = cv2.norm(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.NORM_L2SQR, mask=m.view(np.uint8))
    mse = sse / (n * (a.shape[2] if a.ndim == 3 else 1))
    if mse <= 0:
        return PSNR_CAP
    return float(min(PSNR_CAP, 10.0 * np.log10(255.0**2 / mse)))


@lru_cache(maxsize=1)
def _srgb_linear_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92).astype(np.float32)


# sRGB -> XYZ (D65) and the D65 2 degree white, the constants scikit-image's rgb2lab uses
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(pixels: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> float32 CIE LAB, the formulas and constants of ``skimage.color.rgb2lab``."""
    lin = _srgb_linear_lut()[pixels]
    xyz = lin @ (_RGB_TO_XYZ.T / _WHITE_D65).astype(np.float32)
    f = np.where(xyz > np.float32(0.008856), np.cbrt(xyz), np.float32(7.787) * xyz + np.float32(16.0 / 116.0))
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 (kL = kC = kH = 1) of two LAB arrays (..., 3), vectorised."""
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.arctan2(b1, a1p) % (2 * np.pi)
    h2p = np.arctan2(b2, a2p) % (2 * np.pi)
    cprod = c1p * c2p
    dh = h2p - h1p
    dh = np.where(dh > np.pi, dh - 2 * np.pi, np.where(dh < -np.pi, dh + 2 * np.pi, dh))
    dh = np.where(cprod == 0, 0.0, dh)
    d_l, d_c = L2 - L1, c2p - c1p
    d_h = 2 * np.sqrt(cprod) * np.sin(dh / 2)
    l_bar, c_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) > np.pi, np.where(hsum < 2 * np.pi, hsum + 2 * np.pi, hsum - 2 * np.pi), hsum
    ) / 2
    h_bar = np.where(cprod == 0, hsum, h_bar)
    t = (
        1
        - 0.17 * np.cos(h_bar - np.radians(30))
        + 0.24 * np.cos(2 * h_bar)
        + 0.32 * np.cos(3 * h_bar + np.radians(6))
        - 0.20 * np.cos(4 * h_bar - np.radians(63))
    )
    d_theta = np.radians(30) * np.exp(-(((np.degrees(h_bar) - 275) / 25) ** 2))
    cb7 = c_bar**7
    r_t = -np.sin(2 * d_theta) * 2 * np.sqrt(cb7 / (cb7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar
    s_h = 1 + 0.015 * c_bar * t
    tl, tc, th = d_l / s_l, d_c / s_c, d_h / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def ciede2000(a: np.ndarray, b: np.ndarray, region: Region = None, *, max_side: int | None = None) -> float:
    """Mean CIEDE2000 colour difference over the region.

    With ``max_side`` both images are area-downsampled first (a region pixel survives only
    if its whole footprint was inside the region): ~16x fewer pixels at 1024 -> 256, and
    averaging cancels pixel noise, so the downsampled mean is a little *lower* than the
    full-resolution one for noisy pairs (see the benchmark for the measured gap).
    """
    m = _full(a.shape, region)
    a, b, m = _downsample(a, max_side), _downsample(b, max_side), _downsample_region(m, max_side)
    if not m.any():
        return float("nan")
    pa, pb = a[m], b[m]
    changed = np.any(pa != pb, axis=-1)  # identical pixels have dE 0: skip the trigonometry for them
    if not changed.any():
        return 0.0
    de = delta_e2000(rgb_to_lab(pa[changed]), rgb_to_lab(pb[changed]))
    return float(de.sum() / len(pa))


# ---------------------------------------------------------------------------------------------
# seams, backgrounds, framing, sharpness


def _ring(mask: np.ndarray, px: int) -> np.ndarray:
    """Pixels within ``px`` of the mask's boundary, on both sides."""
    return dilate(mask, px) & ~erode(mask, px)


def _gradient(image: np.ndarray) -> np.ndarray:
    """Colour gradient magnitude: RGB Euclidean norm of the Sobel derivatives, in levels per pixel."""
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    sq = cv2.transform(gx * gx + gy * gy, np.ones((1, 3), np.float32))
    return np.sqrt(sq)


def seam_score(source: np.ndarray, edited: np.ndarray, edit_mask: np.ndarray, *, tolerance_px: int = 0) -> float:
    """Mean *excess* colour gradient of the edit over the source in a band around the edit boundary.

    Unit: 8-bit RGB levels per pixel (Euclidean over channels of the Sobel derivative / 8),
    averaged over the band of ``SEAM_BAND_PX`` px on each side of the boundary. Only the
    positive part counts: removing an object lowers the gradient there (fine), a pasted
    patch that does not line up or a colour step at the boundary raises it. 0 = seamless.
    ``tolerance_px`` > 0 compares with the strongest source gradient within that distance,
    so an alignment error of a few px (reframed edits) is not mistaken for a seam.
    """
    band = _ring(np.asarray(edit_mask, bool), SEAM_BAND_PX)
    box = _crop_box(band, 1 + tolerance_px)
    if box is None:
        return 0.0
    ref = _gradient(source[box])
    if tolerance_px > 0:
        ref = cv2.dilate(ref, np.ones((2 * tolerance_px + 1, 2 * tolerance_px + 1), np.uint8))
    excess = _gradient(edited[box]) - ref
    return float(np.maximum(excess[band[box]], 0.0).mean())


def near_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int) -> np.ndarray:
    """uint8 0/255 map of pixels whose every channel is within ``tolerance`` of ``colour`` (cv2.inRange)."""
    c = np.asarray(colour, np.int32)
    lo, hi = np.clip(c - tolerance, 0, 255), np.clip(c + tolerance, 0, 255)
    return cv2.inRange(np.ascontiguousarray(image), lo.astype(np.uint8), hi.astype(np.uint8))


def canvas_foreground(
    image: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), tolerance: int = CANVAS_TOLERANCE
) -> np.ndarray:
    """Pixels off a flat background colour, specks opened (holes are *not* filled)."""
    off = cv2.bitwise_not(near_colour(image, background, tolerance))
    return cv2.morphologyEx(off, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).view(bool)


def product_bbox(
    edited: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), tolerance: int = 8
) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the pixels more than ``tolerance`` levels off the background, specks removed."""
    return bbox(canvas_foreground(edited, background, tolerance))


def _fill_of(box: tuple[int, int, int, int] | None, shape: tuple[int, ...]) -> float:
    if box is None:
        return 0.0
    y0, y1, x0, x1 = box
    bh, bw = y1 - y0, x1 - x0
    return float(bh / shape[0] if bh >= bw else bw / shape[1])


def product_fill(edited: np.ndarray, background: tuple[int, int, int] = (255, 255, 255), tolerance: int = 8) -> float:
    """The product bbox's longer side relative to the canvas's same side (Amazon: fills >= 85 %)."""
    return _fill_of(product_bbox(edited, background, tolerance), edited.shape)


def _laplacian_var(grey: np.ndarray, region: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1)[region].var())


def sharpness_ratio(source_aligned: np.ndarray, edited: np.ndarray, region: np.ndarray) -> float:
    """Variance of the Laplacian on the region, edited / source (1 = as sharp, < 1 = blurred).

    Pixel noise counts as detail, so a JPEG encode of a noisy photo alone gives ~0.5-0.6
    (pre-smoothing was tried: it makes the ratio unstable on smooth products, where JPEG
    block edges then dominate).
    """
    m = _full(edited.shape, region)
    box = _crop_box(m, 1)
    if box is None:
        return float("nan")
    vs = _laplacian_var(_grey(source_aligned[box]), m[box])
    ve = _laplacian_var(_grey(edited[box]), m[box])
    return float((ve + 1e-6) / (vs + 1e-6))


# ---------------------------------------------------------------------------------------------
# identity drift: perceptual hash


def phash(image: np.ndarray, region: Region = None) -> int:
    """64-bit DCT perceptual hash (imagehash's phash) of the region's bounding box.

    Pixels inside the box but outside the region are set to the region's mean grey, so an
    old or new background does not change the product's hash.
    """
    g = _grey(image)
    if region is not None:
        box = _crop_box(np.asarray(region, bool), 0)
        if box is None:
            return 0
        g, m = g[box].copy(), np.asarray(region, bool)[box]
        g[~m] = g[m].mean()
    small = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low)
    return int(np.packbits(bits).view(">u8")[0])


def phash_distance(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes (0 = same, ~32 = unrelated)."""
    return int((int(a) ^ int(b)).bit_count())


def product_drift(source_aligned: np.ndarray, edited: np.ndarray, region: np.ndarray) -> dict[str, float | int]:
    """Did the product change identity? pHash distance and SSIM of the region."""
    return {
        "phash_distance": phash_distance(phash(source_aligned, region), phash(edited, region)),
        "product_ssim": ssim(source_aligned, edited, region),
    }


# ---------------------------------------------------------------------------------------------
# file level: JPEG quality, blockiness, format facts

_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    np.float64,
)  # fmt: skip
_IJG_CHROMA = np.array([17, 18, 24, 47] + [99] * 4 + [18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5
                       + [47, 66] + [99] * 38, np.float64)  # fmt: skip


@lru_cache(maxsize=1)
def _ijg_tables() -> np.ndarray:
    """(100, 2, 64) IJG baseline tables for qualities 1..100 (libjpeg's jpeg_quality_scaling)."""
    q = np.arange(1, 101, dtype=np.float64)[:, None, None]
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    std = np.stack([_IJG_LUMA, _IJG_CHROMA])[None]
    return np.clip(np.floor((std * scale + 50.0) / 100.0), 1, 255)


def jpeg_quality(data: bytes) -> int | None:
    """Estimated IJG quality (1..100) of a JPEG from its quantisation tables; None for other formats.

    Picks the quality whose scaled standard tables are closest (L1) to the file's; encoders
    with custom tables (Photoshop, phones) get the nearest IJG-equivalent quality.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                return None
            tables = {k: np.asarray(v, np.float64) for k, v in (img.quantization or {}).items()}
    except Exception:  # noqa: BLE001 - a metric must never raise on bad bytes
        return None
    if not tables:
        return None
    ref = _ijg_tables()
    err = np.zeros(100)
    for idx, table in list(tables.items())[:2]:
        if table.size == 64:
            err += np.abs(ref[:, min(idx, 1)] - table).sum(axis=-1)
    return int(np.argmin(err)) + 1


def blockiness(image: np.ndarray, block: int = 8) -> float:
    """Mean grey step across block boundaries / mean step elsewhere (~1 clean, > 1 blocky).

    The JPEG grid is 8 px; a JPEG decoded at 1/2 in DCT-scaling mode has it at 4 px (``block``).
    Flat areas add nothing to either side.
    """
    if block < 2:
        raise ValueError(f"blockiness needs a block of at least 2 px (steps inside a block), got {block}")
    g = _grey(image)
    h, w = g.shape
    b = block
    h8, w8 = (h // b) * b, (w // b) * b
    if h8 < 2 * b or w8 < 2 * b:
        return 1.0
    g = g[:h8, :w8]
    # signed steps averaged along each block edge: a block step is coherent along the
    # edge, pixel noise (which a good JPEG encode smooths only inside blocks) averages out;
    # steps above BLOCK_STEP_CAP are image content (a box edge), clipped so they cannot dominate
    # INTER_AREA by an integer factor is exactly the mean over each group of b (and much faster)
    dx = np.abs(cv2.resize(g[:, 1:] - g[:, :-1], (w8 - 1, h8 // b), interpolation=cv2.INTER_AREA))
    dy = np.abs(cv2.resize(g[1:] - g[:-1], (w8 // b, h8 - 1), interpolation=cv2.INTER_AREA))
    dx, dy = dx.clip(0, BLOCK_STEP_CAP), dy.clip(0, BLOCK_STEP_CAP)
    on_x, on_y = dx[:, b - 1::b], dy[b - 1::b]
    boundary = float(on_x.sum() + on_y.sum())
    n_boundary = on_x.size + on_y.size
    inner = float(dx.sum() + dy.sum()) - boundary
    n_inner = dx.size + dy.size - n_boundary
    on, off = boundary / n_boundary, inner / n_inner
    # on a smooth product (a brushed-metal can) a good encoder leaves a tenth or two of a level at block
    # edges, twice the steps inside them: a ratio of 2 nobody can see. Below BLOCK_VISIBLE it is no grid.
    if on - off < BLOCK_VISIBLE:
        return float(min(1.0, (on + 0.01) / (off + 0.01)))
    return float((on + 0.01) / (off + 0.01))


def file_facts(data: bytes) -> dict[str, Any]:
    """Container facts: format, size, mode, ICC profile (sRGB check), byte count. Never raises.

    ``icc_is_srgb`` is best effort: the profile description contains "sRGB"; a file
    without a profile is *assumed* sRGB (``icc_assumed``) as browsers and marketplaces do.
    """
    facts: dict[str, Any] = {
        "format": None, "width": None, "height": None, "mode": None,
        "has_icc": False, "icc_is_srgb": None, "icc_assumed": False, "icc_description": None,
        "bytes": len(data),
    }  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                facts.update(format=(img.format or "").lower() or None, width=img.width, height=img.height)
                facts["mode"] = img.mode
                icc = img.info.get("icc_profile")
    except Exception:  # noqa: BLE001 - not an image: the facts say so
        return facts
    if not icc:
        facts.update(icc_is_srgb=True, icc_assumed=True)
        return facts
    facts["has_icc"] = True
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except (ImageCms.PyCMSError, OSError, ValueError):
        desc = ""
    facts.update(icc_description=desc or None, icc_is_srgb="srgb" in desc.lower())
    return facts


# ---------------------------------------------------------------------------------------------
# OCR


def _normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^0-9A-Z]+", " ", text.upper()).split())


def _ocr_text(image: np.ndarray, region: Region) -> str:
    """Tesseract on a grey crop of the region's box, upscaled so glyphs are ~30+ px tall."""
    import pytesseract

    g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if region is not None:
        box = _crop_box(np.asarray(region, bool), 4)
        if box is None:
            return ""
        g = g[box]
    scale = max(1.0, min(3.0, 1500.0 / max(g.shape)))
    if scale > 1:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return _normalise_text(pytesseract.image_to_string(Image.fromarray(g), config="--psm 3"))


def ocr_similarity(
    source: np.ndarray, edited: np.ndarray, region_source: Region = None, region_edited: Region = None
) -> tuple[float | None, str]:
    """Similarity (difflib ratio, 0..1) of the text tesseract reads in source and edit, and a status.

    Status: "ok"; "no_text" when the source has no readable text (similarity None);
    "skipped: tesseract not installed"; "error: ..." for any other OCR failure. Never raises.
    """
    try:
        import pytesseract
    except ImportError:
        return None, "skipped: pytesseract not installed"
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        return None, "skipped: tesseract not installed"
    try:
        src = _ocr_text(source, region_source)
        if sum(c.isalnum() for c in src) < 2:
            return None, "no_text"
        out = _ocr_text(edited, region_edited)
    except pytesseract.TesseractNotFoundError:
        return None, "skipped: tesseract not installed"
    except Exception as exc:  # noqa: BLE001 - OCR trouble must not fail the gate run
        return None, f"error: {type(exc).__name__}: {exc}"[:200]
    return float(difflib.SequenceMatcher(None, src, out).ratio()), "ok"


# ---------------------------------------------------------------------------------------------
# the row

#: every row has exactly these keys, whatever the intent (None where a metric does not apply)
METRIC_KEYS: tuple[str, ...] = (
    "intent", "width", "height", "aspect_ratio", "size_ok", "format", "bytes", "icc_is_srgb",
    "jpeg_quality", "compression", "blockiness", "blockiness_gain", "ssim_preserved", "psnr_preserved", "delta_e_preserved",
    "seam_score", "sharpness_ratio", "phash_distance", "ocr_similarity", "ocr_status",
    *REFRAME_KEYS,
)  # fmt: skip

def _fidelity(expected: np.ndarray, edited: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """SSIM / PSNR / CIEDE2000 of the region that should be unchanged."""
    return {
        "ssim_preserved": ssim(expected, edited, region),
        "psnr_preserved": psnr(expected, edited, region),
        "delta_e_preserved": ciede2000(expected, edited, region, max_side=DELTA_E_SIDE),
    }


def compression_label(fmt: str | None, quality: int | None) -> str:
    """How the edit was saved, for the block-artefact reason: WebP's 4x4 transforms show on the 8x8 grid too,
    so the reason must not call every lossy file a JPEG."""
    if fmt == "jpeg":
        return f"a JPEG at quality {quality}" if quality else "a JPEG"
    if fmt == "webp":
        return "a WebP"
    return f"a {fmt.upper()}" if fmt else "a file of unknown format"


def compute_metrics(
    source: np.ndarray,
    edited: np.ndarray,
    *,
    edited_bytes: bytes,
    intent: str,
    edit_mask: np.ndarray | None = None,
    target_size: tuple[int, int] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    ocr: bool = False,
    source_alpha: np.ndarray | None = None,
    edited_scale: int = 1,
    source_view: Any = None,
    timings: dict[str, float] | None = None,
) -> dict[str, float | int | str | bool | None]:
    """One flat row of gate metrics for an edit (same keys for every intent, None = not applicable).

    - reframe: the gate's own view of the source product is fitted into the edit (``reframe``):
      canvas, completeness, identity, overlays and detail; ``edited`` may be a reduced decode
      (``edited_scale`` 2 = half size), ``source_alpha`` the source's transparency and
      ``source_view`` the source as ``reframe.decode_pair`` already segmented it.
    - masked: source and edit share geometry; preserved = outside the edit mask dilated by
      ``MASK_DILATE_PX``; seam around the mask; drift on the whole frame.
    - global: preserved = the whole frame (SSIM is on luminance, so a colour look keeps it
      high; CIEDE2000 is reported but large by design); drift on the whole frame.
    Full resolution everywhere else, except CIEDE2000 (longest side ``DELTA_E_SIDE``).
    """
    from airflow_image_catalog.pipeline.quality._decode import Decoded
    from airflow_image_catalog.pipeline.quality.reframe import measure_reframe

    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {', '.join(INTENTS)}, got {intent!r}")
    h, w = edited.shape[:2]
    facts = file_facts(edited_bytes)
    row: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    row.update(
        intent=intent,
        width=facts["width"] or w,
        height=facts["height"] or h,
        size_ok=None if target_size is None else (facts["width"], facts["height"]) == tuple(target_size),
        format=facts["format"],
        bytes=facts["bytes"],
        icc_is_srgb=facts["icc_is_srgb"],
        jpeg_quality=jpeg_quality(edited_bytes),
        ocr_status="skipped: not requested",
    )
    row["compression"] = compression_label(row["format"], row["jpeg_quality"])
    row["aspect_ratio"] = row["width"] / row["height"]
    region_src: np.ndarray | None = None
    region_ed: np.ndarray | None = None
    if intent == "reframe":
        src = source_view or Decoded(source, source_alpha, 1, (source.shape[1], source.shape[0]))
        measured = measure_reframe(src, Decoded(edited, None, edited_scale, (row["width"], row["height"]),
                                                row["format"] or ""),
                                   canvas=background, timings=timings)
        source_blocks = measured.pop("blockiness_source", None)
        row.update(measured)
        row["ssim_preserved"] = row["product_ssim"]
        row["delta_e_preserved"] = row["delta_e_product"]
        if row["blockiness"] is not None:
            # relative to the source: a JPEG upload's own blocks are not the edit's fault
            row["blockiness_gain"] = row["blockiness"] / max(source_blocks or 1.0, 1e-6)
    else:
        row["blockiness"] = blockiness(edited)
        row["blockiness_gain"] = row["blockiness"] / max(blockiness(source), 1e-6)
        if source.shape != edited.shape:
            raise ValueError(f"intent {intent!r} needs source and edit of one shape: {source.shape} vs {edited.shape}")
        whole = np.ones((h, w), bool)
        if intent == "masked":
            if edit_mask is None:
                raise ValueError("intent 'masked' needs edit_mask")
            mask = np.asarray(edit_mask, bool)
            preserved = ~dilate(mask, MASK_DILATE_PX)
            row["seam_score"] = seam_score(source, edited, mask)
        else:
            preserved = whole
        row.update(_fidelity(source, edited, preserved))
        row["sharpness_ratio"] = sharpness_ratio(source, edited, preserved)
        row.update(product_drift(source, edited, whole))
    if ocr and intent != "reframe":
        row["ocr_similarity"], row["ocr_status"] = ocr_similarity(source, edited, region_src, region_ed)
    return row
