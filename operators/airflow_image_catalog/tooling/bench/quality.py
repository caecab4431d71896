"""Benchmark of the quality-gate metrics: speed per core and agreement with scikit-image.

``python -m airflow_image_catalog.tooling.bench.quality`` renders procedural samples, edits them with the local
engine (a marketplace white square for intent "reframe", object removal for "masked", a
colour look for "global"), then times ``compute_metrics`` on 1024x1024 pairs and compares
SSIM / PSNR / CIEDE2000 with scikit-image's reference implementations.

The pair builders are shared with tests/pipeline/quality, so the tests measure the same edits.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from airflow_image_catalog.imaging.engine import apply_op, decode_image, encode_image
from airflow_image_catalog.tooling.samples import render_sample, sample_specs

SIDE = 1024


@dataclass(frozen=True)
class Pair:
    """One source/edit pair as the gate sees it (the edit decoded from its encoded bytes)."""

    name: str
    intent: str
    source: np.ndarray
    edited: np.ndarray
    edited_bytes: bytes
    edit_mask: np.ndarray | None = None
    target_size: tuple[int, int] | None = None


def add_sticker(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put a dark round price sticker on the backdrop, clear of the product; return (image, its mask)."""
    h, w = truth.shape
    r = max(6, int(min(h, w) * 0.05))
    dist = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 3)
    dist[: 2 * r] = dist[-2 * r :] = 0
    dist[:, : 2 * r] = dist[:, -2 * r :] = 0
    cy, cx = np.unravel_index(int(np.argmax(dist[: h // 2])), (h // 2, w))  # upper half, far from product
    out = image.copy()
    cv2.circle(out, (int(cx), int(cy)), r, (40, 36, 44), -1, lineType=cv2.LINE_AA)
    cv2.putText(out, "$9", (int(cx - r * 0.6), int(cy + r * 0.3)), cv2.FONT_HERSHEY_SIMPLEX, r / 30, (250, 250, 250), 2)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (int(cx), int(cy)), r + 2, 1, -1)
    return out, mask.astype(bool)


def _encoded(image: np.ndarray, fmt: str = "jpeg", quality: int = 92) -> tuple[np.ndarray, bytes]:
    data = encode_image(image, format=fmt, quality=quality)
    return decode_image(data), data


def reframe_pair(name: str, source: np.ndarray, side: int = SIDE, fmt: str = "jpeg") -> Pair:
    """The marketplace white square: white_background + fit_canvas(side x side, 85 % fill)."""
    white = apply_op("white_background", source)
    canvas = apply_op("fit_canvas", white, {"width": side, "height": side})
    edited, data = _encoded(canvas, fmt)
    return Pair(name, "reframe", source, edited, data, None, (side, side))


def masked_pair(name: str, source: np.ndarray, truth: np.ndarray, fmt: str = "png") -> Pair:
    """Object removal: a sticker on the backdrop is inpainted away (PNG keeps the outside bit-exact)."""
    with_sticker, mask = add_sticker(source, truth)
    edited, data = _encoded(apply_op("remove_object", with_sticker, mask=mask), fmt)
    return Pair(name, "masked", with_sticker, edited, data, mask, None)


def global_pair(name: str, source: np.ndarray, fmt: str = "jpeg") -> Pair:
    """A warm colour look over the whole frame."""
    edited, data = _encoded(apply_op("look", source, {"name": "warm"}), fmt)
    return Pair(name, "global", source, edited, data, None, None)


def sample(index: int, side: int | None = None, seed: int = 7) -> tuple[str, np.ndarray, np.ndarray]:
    """(stem, image, truth) of procedural sample ``index``; ``side`` renders it as a side x side square."""
    sp = sample_specs()[index]
    if side is not None:
        sp = replace(sp, size=(side, side))
    image, truth = render_sample(sp, seed)
    return sp.stem, image, truth


# ---------------------------------------------------------------------------------------------
# reference implementations and timing


def reference_metrics(a: np.ndarray, b: np.ndarray, region: np.ndarray | None) -> dict[str, float]:
    """SSIM / PSNR / CIEDE2000 with scikit-image, regions by boolean indexing of its maps."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    from airflow_image_catalog.pipeline.quality.metrics import PSNR_CAP, _grey

    m = np.ones(a.shape[:2], bool) if region is None else region
    _, smap = structural_similarity(
        _grey(a), _grey(b), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, full=True,
    )  # fmt: skip
    pad = 5  # skimage's mean drops the window radius at the borders; so does ours
    valid = np.zeros_like(m)
    valid[pad:-pad, pad:-pad] = True
    diff = a[m].astype(np.float64) - b[m].astype(np.float64)
    mse = float(np.mean(diff**2))
    de = deltaE_ciede2000(rgb2lab(a), rgb2lab(b))
    return {
        "ssim": float(smap[m & valid].mean()),
        "psnr": PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(255**2 / mse)),
        "delta_e": float(de[m].mean()),
    }


def _per_second(fn, repeat: int) -> float:
    fn()  # warm-up (lazy imports, caches)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return repeat / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Speed and agreement of the quality-gate metrics.")
    parser.add_argument("--samples", type=int, default=4, help="procedural samples to edit (max 12)")
    parser.add_argument("--repeat", type=int, default=10, help="timed compute_metrics calls per pair")
    args = parser.parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var) != "1":
            print(f"note: {var} is not 1; run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for one core")
    cv2.setNumThreads(1)
    from airflow_image_catalog.pipeline.quality.metrics import (
        DELTA_E_SIDE,
        ciede2000,
        compute_metrics,
        psnr,
        ssim,
    )

    t0 = time.perf_counter()
    pairs: list[Pair] = []
    for i in range(min(args.samples, len(sample_specs()))):
        stem, image, truth = sample(i, SIDE)
        pairs += [reframe_pair(stem, image), masked_pair(stem, image, truth)]
    print(f"{len(pairs)} pairs of {SIDE}x{SIDE} from {args.samples} samples, made in {time.perf_counter() - t0:.1f} s")

    print(f"\n{'compute_metrics (1 core, ocr=False)':<40}{'pairs/s':>10}{'ms/pair':>10}")
    for intent in ("reframe", "masked"):
        group = [p for p in pairs if p.intent == intent]

        def run(group: list[Pair] = group, intent: str = intent) -> None:
            for p in group:
                compute_metrics(p.source, p.edited, edited_bytes=p.edited_bytes, intent=intent,
                                edit_mask=p.edit_mask, target_size=p.target_size)  # fmt: skip

        rate = _per_second(run, args.repeat) * len(group)
        print(f"{intent:<40}{rate:>10.1f}{1000 / rate:>10.1f}")

    # agreement: the preserved-region comparison of each pair, ours vs scikit-image
    from airflow_image_catalog.imaging.engine._common import dilate
    from airflow_image_catalog.pipeline.quality.metrics import MASK_DILATE_PX, align_reframed

    rows = []
    for p in pairs:
        if p.intent == "reframe":
            al = align_reframed(p.source, p.edited)
            region = al.product_region
            a = np.where(region[..., None], al.source_aligned, p.edited)
        else:
            region, a = ~dilate(p.edit_mask, MASK_DILATE_PX), p.source
        ref = reference_metrics(a, p.edited, region)
        ours = {"ssim": ssim(a, p.edited, region), "psnr": psnr(a, p.edited, region),
                "delta_e": ciede2000(a, p.edited, region),
                "delta_e_small": ciede2000(a, p.edited, region, max_side=DELTA_E_SIDE)}  # fmt: skip
        rows.append((p, region, a, ref, ours))

    one = pairs[0]
    print(f"\n{'one 1024x1024 pair, 1 core':<40}{'ours ms':>10}{'skimage ms':>12}")
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from airflow_image_catalog.pipeline.quality.metrics import _grey

    ga, gb = _grey(one.source[:SIDE, :SIDE]), _grey(one.edited)
    timings = [
        ("SSIM (grey, full res)", lambda: ssim(one.edited, one.edited[::-1]),
         lambda: structural_similarity(ga, gb, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255)),
        ("PSNR (RGB, full res)", lambda: psnr(one.edited, one.edited[::-1]),
         lambda: peak_signal_noise_ratio(one.edited, one.edited[::-1], data_range=255)),
        ("CIEDE2000 (full res)", lambda: ciede2000(one.edited, one.edited[::-1]),
         lambda: deltaE_ciede2000(rgb2lab(one.edited), rgb2lab(one.edited[::-1])).mean()),
        (f"CIEDE2000 (ours at {DELTA_E_SIDE} px)",
         lambda: ciede2000(one.edited, one.edited[::-1], max_side=DELTA_E_SIDE), None),
    ]  # fmt: skip
    for label, ours_fn, ref_fn in timings:
        ours_ms = 1000 / _per_second(ours_fn, 3)
        ref_ms = f"{1000 / _per_second(ref_fn, 1):>12.0f}" if ref_fn else f"{'-':>12}"
        print(f"{label:<40}{ours_ms:>10.1f}{ref_ms}")

    print(f"\n{'agreement over ' + str(len(rows)) + ' pairs (preserved region)':<40}{'max |d|':>10}{'range':>22}")
    for key, label in (("ssim", "SSIM"), ("psnr", "PSNR dB"), ("delta_e", "CIEDE2000 (full res)")):
        d = max(abs(o[key] - r[key]) for *_, r, o in rows)
        lo, hi = min(r[key] for *_, r, _ in rows), max(r[key] for *_, r, _ in rows)
        print(f"{label:<40}{d:>10.4f}{f'{lo:.3f} .. {hi:.3f}':>22}")
    d = max(abs(o["delta_e_small"] - r["delta_e"]) for *_, r, o in rows)
    print(f"{'CIEDE2000 at ' + str(DELTA_E_SIDE) + ' px vs full res':<40}{d:>10.4f}")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
