"""``make bench-quality``: the quality gate judged on its defect corpus, its speed, its agreement with scikit-image.

1. The defect corpus (``corpus``): every clean edit and every defect kind of every product of the
   *held-out* half (and, for reference, the tuning half the thresholds were chosen on) goes through
   the gate's own measurement and a Great Expectations validation of the ``amazon_main`` profile,
   50 rows a chunk as in a run. Printed: per kind the share quarantined and the share whose
   reasons include the right category; the clean false-quarantine rate; the real-photo cases the
   issue cites (a transparent shot losing a part, a logo touching the frame clipped); beside them the same
   figures of a peer, the checks a team would script (``gate_peer``), its limits set on the tuning half.
2. Speed of the whole gate path (``gate_chunk``: read, decode, fit, every check, GX validation of
   the chunk, quarantine copies) on 2000x2000 JPEG edits, one core, split by stage.
3. SSIM / PSNR / CIEDE2000 against scikit-image's reference implementations.

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


# ---------------------------------------------------------------------------------------------
# 1. the defect corpus through the gate


@dataclass
class Judged:
    """One corpus item as the gate judged it."""

    item: str
    product: str
    origin: str
    kind: str
    expected: tuple[str, ...]
    quarantined: bool
    categories: set[str]
    reasons: list[str]
    seconds: float


def gate_rows(pairs, profile_ref: str = "amazon_main", chunk: int = 50):
    """Measure (image_id, source bytes, edit bytes) pairs as the gate does and validate the rows with GX,
    ``chunk`` rows at a time; yields (image_id, failed expectations, seconds of measurement)."""
    from airflow_image_catalog.pipeline.quality.gate import validate_rows
    from airflow_image_catalog.pipeline.quality.metrics import compute_metrics
    from airflow_image_catalog.pipeline.quality.profiles import load_profile
    from airflow_image_catalog.pipeline.quality.reframe import decode_pair

    profile = load_profile(profile_ref)
    expectations = profile.for_intent("reframe")
    canvas = profile.canvas or (255, 255, 255)
    pending: list[tuple[dict, float]] = []

    def flush():
        validation = validate_rows([r for r, _ in pending], expectations, suite_name=profile.name)
        done = [(row["image_id"], validation.failed.get(row["image_id"], []), seconds) for row, seconds in pending]
        pending.clear()
        return done

    for image_id, source_bytes, edited_bytes in pairs:
        t0 = time.perf_counter()
        view, edited = decode_pair(source_bytes, edited_bytes)
        row = compute_metrics(view.decoded.rgb, edited.rgb, edited_bytes=edited_bytes, intent="reframe",
                              target_size=None, background=canvas, source_alpha=view.decoded.alpha,
                              edited_scale=edited.scale, source_view=view)
        width, height = int(row["width"]), int(row["height"])
        row.update(image_id=image_id, longest_side=max(width, height), shortest_side=min(width, height),
                   megapixels=width * height / 1e6, file_mb=len(edited_bytes) / 1e6)
        pending.append((row, time.perf_counter() - t0))
        if len(pending) >= chunk:
            yield from flush()
    if pending:
        yield from flush()


def judge(items, profile_ref: str = "amazon_main", chunk: int = 50) -> list[Judged]:
    """Every corpus item through ``gate_rows``."""
    by_id = {}

    def pairs():
        for n, it in enumerate(items):
            by_id[f"{n}:{it.name}"] = it
            yield f"{n}:{it.name}", it.product.source_bytes(), it.edited_bytes

    out: list[Judged] = []
    for image_id, failed, seconds in gate_rows(pairs(), profile_ref, chunk):
        it = by_id.pop(image_id)
        out.append(Judged(it.name, it.product.name, it.product.origin, it.kind, it.expected, bool(failed),
                          {f["category"] for f in failed}, [f["reason"] for f in failed], seconds))
    return out


def corpus_table(judged: list[Judged], title: str, peer: dict[str, set[str]] | None = None) -> dict:
    """Print per-kind detection, right-reason share and the clean false-quarantine rate, beside the peer's
    (``peer``: its failed categories by item name) when given; return the figures."""
    kinds = sorted({j.kind for j in judged if j.kind != "clean"})

    def peer_counts(group: list[Judged]) -> tuple[int, int]:
        failed = [peer[j.item] for j in group] if peer is not None else []
        return sum(bool(f) for f in failed), sum(bool(f & set(j.expected)) for f, j in zip(failed, group, strict=True))

    def peer_cells(group: list[Judged], digits: int) -> str:
        if peer is None:
            return ""
        caught, right = peer_counts(group)
        return f"{caught / max(1, len(group)):>13.{digits}%}{right / max(1, len(group)):>8.{digits}%}"

    print(f"\n{title}")
    print(f"{'kind':<18}{'images':>7}{'quarantined':>13}{'right reason':>14}"
          f"{'peer: quar.':>13}{'reason':>8}" * (peer is not None) + "   reason categories expected")
    figures: dict = {"kinds": {}}
    for kind in kinds:
        group = [j for j in judged if j.kind == kind]
        caught = [j for j in group if j.quarantined]
        right = [j for j in caught if j.categories & set(j.expected)]
        figures["kinds"][kind] = {"n": len(group), "quarantined": len(caught), "right_reason": len(right)}
        if peer is not None:
            figures["kinds"][kind].update(zip(("peer_quarantined", "peer_right_reason"), peer_counts(group), strict=True))
        print(f"{kind:<18}{len(group):>7}{len(caught) / len(group):>13.0%}{len(right) / len(group):>14.0%}"
              f"{peer_cells(group, 0)}   "
              f"{'/'.join(group[0].expected)}")
    defects = [j for j in judged if j.kind != "clean"]
    clean = [j for j in judged if j.kind == "clean"]
    caught = sum(j.quarantined for j in defects)
    right = sum(bool(j.quarantined and j.categories & set(j.expected)) for j in defects)
    false = [j for j in clean if j.quarantined]
    figures.update(defects=len(defects), caught=caught, right=right, clean=len(clean), false_quarantined=len(false))
    print(f"{'all defects':<18}{len(defects):>7}{caught / max(1, len(defects)):>13.1%}{right / max(1, len(defects)):>14.1%}"
          f"{peer_cells(defects, 1)}")
    print(f"{'clean edits':<18}{len(clean):>7}{len(false) / max(1, len(clean)):>13.1%}  false quarantines"
          f"{'' if not false else ': ' + ', '.join(j.item for j in false)}")
    if peer is not None:
        p_caught, p_right = peer_counts(defects)
        p_false = [j.item for j in clean if peer[j.item]]
        figures.update(peer_caught=p_caught, peer_right=p_right, peer_false_quarantined=len(p_false))
        print(f"{'peer clean edits':<18}{len(clean):>7}{len(p_false) / max(1, len(clean)):>13.1%}  false quarantines"
              f"{'' if not p_false else ': ' + ', '.join(p_false[:6]) + (' ...' if len(p_false) > 6 else '')}")
    for j in false:
        print(f"    {j.item}: {' | '.join(j.reasons)}")
    missed = [j for j in defects if not j.quarantined]
    for j in missed[:12]:
        print(f"    missed {j.item}")
    wrong = [j for j in defects if j.quarantined and not j.categories & set(j.expected)]
    for j in wrong[:12]:
        print(f"    wrong reason {j.item}: {sorted(j.categories)} ({' | '.join(j.reasons)[:160]})")
    return figures


CITED = (("logo_transparent", "part_missing"), ("logo_transparent", "hole"), ("logo_touching_frame", "clipped_edges"),
         ("logo_on_white", "clipped_edges"), ("logo_touching_frame", "part_missing"))


def cited_cases(judged: list[Judged]) -> None:
    """The engine failures the issue cites, as the corpus reproduces them, and the clean edits of real photos."""
    print("\nthe issue's real-photo cases (held out):")
    for product, kind in CITED:
        for j in (j for j in judged if j.product == product and j.kind == kind):
            verdict = "quarantined" if j.quarantined else "PASSED"
            print(f"  {product + ' ' + kind:<38}{verdict:<13}{j.reasons[0] if j.reasons else ''}")
    real_clean = [j for j in judged if j.origin == "real" and j.kind == "clean"]
    passed = sum(not j.quarantined for j in real_clean)
    print(f"  clean edits of real photos: {passed} of {len(real_clean)} pass")


#: an engine cut-out whose mask overlaps the truth at least this much is a right edit the gate must pass
RIGHT_EDIT_IOU = 0.97


def real_photo_edits() -> dict:
    """The engine's own marketplace edits of the gallery's real photos (tooling/gallery.py), gated.

    Unlike the corpus, these edits are the local engine's: each is a right edit or not by the IoU
    of the engine's product mask against the gallery's truth (>= ``RIGHT_EDIT_IOU``); the gate
    should pass the right ones and quarantine the others. Scenes are refused by the engine before
    the gate and are left out.
    """
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.backends.local import LocalEngineBackend
    from airflow_image_catalog.imaging.engine import NoSubjectError, decode_image, product_matte
    from airflow_image_catalog.recipes import load_recipe
    from airflow_image_catalog.tooling.gallery import SCENE, gallery

    backend, recipe = LocalEngineBackend(), load_recipe("marketplace_white_square")
    edits, ious = [], {}
    for item in gallery():
        if item.kind == SCENE:
            continue
        try:
            mask = product_matte(decode_image(item.data, keep_alpha=True))[2]
            result = backend.edit(item.data, recipe, ImageContext(item.name, "/nonexistent", recipe.recipe_dir))
        except NoSubjectError as exc:
            print(f"  {item.name}: refused by the engine ({str(exc)[:80]})")
            continue
        ious[item.name] = float((mask & item.truth).sum() / max((mask | item.truth).sum(), 1))
        edits.append((item.name, item.data, result.data))
    print(f"\nreal photos (the gallery), the local engine's marketplace edit, gated with amazon_main "
          f"(a right edit: engine mask IoU >= {RIGHT_EDIT_IOU}):")
    print(f"{'image':<30}{'engine IoU':>11}  {'gate':<13}reason")
    calls = {"right_passed": 0, "right": 0, "wrong_quarantined": 0, "wrong": 0}
    for name, failed, _ in gate_rows(edits):
        right = ious[name] >= RIGHT_EDIT_IOU
        calls["right" if right else "wrong"] += 1
        calls["right_passed"] += right and not failed
        calls["wrong_quarantined"] += (not right) and bool(failed)
        verdict = "quarantined" if failed else "passed"
        print(f"{name:<30}{ious[name]:>11.3f}  {verdict:<13}{failed[0]['reason'][:110] if failed else ''}")
    print(f"  right edits passed: {calls['right_passed']} of {calls['right']}; "
          f"wrong edits quarantined: {calls['wrong_quarantined']} of {calls['wrong']}")
    return calls


# ---------------------------------------------------------------------------------------------
# 2. speed of the gate path


def gate_speed(n_images: int, side: int = 2000) -> dict:
    """Time ``gate_chunk`` on one chunk of ``n_images`` 2000x2000 JPEG edits (clean and damaged) on one core."""
    import tempfile
    from pathlib import Path

    from airflow_image_catalog.pipeline.quality.gate import gate_chunk
    from airflow_image_catalog.pipeline.quality.profiles import load_profile
    from airflow_image_catalog.recipes import load_recipe
    from airflow_image_catalog.tooling.bench import corpus
    from airflow_image_catalog.workspace.manifest import EditManifest, EditRecord, ImageStatus, sha256_hex

    names = corpus.split()["held_out"]
    records, peer_inputs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = 0
        for name in names:
            product = corpus.product(name)
            source = product.source_bytes()
            ext = "png" if product.transparent or product.source_format == "png" else "jpg"
            for it in corpus.items([product], side, kinds=("part_missing", "grey_canvas", "watermark"), engine=False):
                if it.variant.startswith("png"):
                    continue
                (root / f"{made}.src.{ext}").write_bytes(source)
                (root / f"{made}.out.jpg").write_bytes(it.edited_bytes)
                records.append(EditRecord(
                    image_id=f"img{made:04d}", source_uri=f"file://{root}/{made}.src.{ext}", source_sha256=sha256_hex(source),
                    status=ImageStatus.EDITED, output_uri=f"file://{root}/{made}.out.jpg",
                    output_sha256=sha256_hex(it.edited_bytes), output_format="jpeg", width=side, height=side))
                peer_inputs.append((source, it.edited_bytes, product.alpha > 0.5))
                made += 1
                if made >= n_images:
                    break
            if made >= n_images:
                break
        manifest = EditManifest("bench", 0, {"name": "marketplace_white_square"}, "local", "local-engine", records)
        recipe, profile = load_recipe("marketplace_white_square"), load_profile("amazon_main")
        gate_chunk(manifest, recipe, profile, source_root=str(root), quarantine_root=str(root / "q0"), docs_root=None,
                   ocr=False)  # warm-up: imports, GX's first context
        t0, cpu0 = time.perf_counter(), time.process_time()
        gate = gate_chunk(manifest, recipe, profile, source_root=str(root), quarantine_root=str(root / "q"),
                          docs_root=None, ocr=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    seconds = gate["seconds"]
    rate = len(records) / wall
    print(f"\ngate path, one core: {len(records)} edits of {side}x{side} JPEG in one chunk, "
          f"{gate['counts']['quarantined']} quarantined")
    print(f"{'stage':<36}{'ms / image':>12}{'share':>8}")
    staged = 0.0
    for stage, label in (("decode", "decode (source + edit, DCT-scaled)"), ("align", "segment + fit"),
                         ("checks", "every check"), ("validation", "GX validation (per chunk)")):
        value = seconds.get(stage, 0.0)
        staged += value
        print(f"{label:<36}{1000 * value / len(records):>12.1f}{value / wall:>8.0%}")
    print(f"{'read, quarantine copies, rest':<36}{1000 * (wall - staged) / len(records):>12.1f}{(wall - staged) / wall:>8.0%}")
    print(f"{'whole gate path (wall)':<36}{1000 * wall / len(records):>12.1f}   = {rate:.1f} images/s (target 10, floor 5)")
    # on a shared machine the wall clock counts other processes' turns; the process's CPU time is
    # what one core spends on the chunk (one thread: OPENBLAS/OMP_NUM_THREADS=1, cv2.setNumThreads(1))
    print(f"{'whole gate path (CPU of this process)':<36}{1000 * cpu / len(records):>12.1f}   = "
          f"{len(records) / cpu:.1f} images/s on one core (target 10, floor 5)")
    from airflow_image_catalog.tooling.bench.gate_peer import measure

    peer_cpu0 = time.process_time()
    for source, edited, mask in peer_inputs:
        measure(source, edited, mask)
    peer_cpu = time.process_time() - peer_cpu0
    print(f"{'the peer script, same edits (CPU)':<36}{1000 * peer_cpu / len(peer_inputs):>12.1f}   = "
          f"{len(peer_inputs) / peer_cpu:.1f} images/s on one core (its checks only: no GX, no quarantine)")
    return {"images": len(records), "images_per_second": rate, "cpu_images_per_second": len(records) / cpu,
            "seconds": seconds, "wall": wall, "cpu": cpu, "peer_cpu_images_per_second": len(peer_inputs) / peer_cpu}


# ---------------------------------------------------------------------------------------------
# 3. agreement with scikit-image


def agreement(n_samples: int) -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from airflow_image_catalog.imaging.engine._common import dilate
    from airflow_image_catalog.pipeline.quality.metrics import (
        DELTA_E_SIDE,
        MASK_DILATE_PX,
        _grey,
        ciede2000,
        psnr,
        ssim,
    )

    pairs = []
    for i in range(min(n_samples, len(sample_specs()))):
        stem, image, truth = sample(i, SIDE)
        pairs.append(masked_pair(stem, image, truth))
    rows = []
    for p in pairs:
        region, a = ~dilate(p.edit_mask, MASK_DILATE_PX), p.source
        ref = reference_metrics(a, p.edited, region)
        ours = {"ssim": ssim(a, p.edited, region), "psnr": psnr(a, p.edited, region),
                "delta_e": ciede2000(a, p.edited, region),
                "delta_e_small": ciede2000(a, p.edited, region, max_side=DELTA_E_SIDE)}  # fmt: skip
        rows.append((ref, ours))
    one = pairs[0]
    ga, gb = _grey(one.source), _grey(one.edited)
    print(f"\n{'one 1024x1024 pair, 1 core':<40}{'ours ms':>10}{'skimage ms':>12}")
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
        d = max(abs(o[key] - r[key]) for r, o in rows)
        lo, hi = min(r[key] for r, _ in rows), max(r[key] for r, _ in rows)
        print(f"{label:<40}{d:>10.4f}{f'{lo:.3f} .. {hi:.3f}':>22}")
    d = max(abs(o["delta_e_small"] - r["delta_e"]) for r, o in rows)
    print(f"{'CIEDE2000 at ' + str(DELTA_E_SIDE) + ' px vs full res':<40}{d:>10.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The quality gate on its defect corpus; its speed; agreement.")
    parser.add_argument("--side", type=int, default=2000, help="canvas side of the corpus edits")
    parser.add_argument("--halves", default="held_out,tuning", help="corpus halves to judge (comma separated)")
    parser.add_argument("--kinds", default=None,
                        help="defect kinds to judge (comma separated; 'clean' for the clean edits alone; default all)")
    parser.add_argument("--products", default=None, help="only these products of each half (comma separated)")
    parser.add_argument("--real-photos", type=int, default=1, help="0 skips the gallery's engine edits")
    parser.add_argument("--speed-images", type=int, default=50, help="edits in the timed chunk")
    parser.add_argument("--samples", type=int, default=4, help="procedural samples for the agreement check")
    parser.add_argument("--peer", type=int, default=1, help="0 skips the peer script judged beside the gate")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var) != "1":
            print(f"note: {var} is not 1; run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 for one core")
    cv2.setNumThreads(1)
    from airflow_image_catalog.tooling.bench import corpus, gate_peer

    t0 = time.perf_counter()
    halves = corpus.split()
    figures: dict = {}
    wanted = [h for h in args.halves.split(",") if h]
    peer = None
    if args.peer and wanted:
        # the peer's limits come from the tuning half's clean edits, as the gate's did
        peer = gate_peer.calibrated_on(corpus.items([corpus.product(n) for n in halves["tuning"]], args.side, kinds=()))
        print("\npeer (tooling/bench/gate_peer.py), limits from the tuning half's clean edits: "
              + ", ".join(f"{k} {v:.3g}" for k, v in peer.limits.items()))
    for half in wanted:
        names = [n for n in halves[half] if args.products is None or n in args.products.split(",")]
        products = [corpus.product(name) for name in names]
        kinds = None if args.kinds is None else tuple(k for k in args.kinds.split(",") if k)
        items = corpus.items(products, args.side, kinds=kinds, clean="clean" in (kinds or ("clean",)))
        verdicts: dict[str, set[str]] = {}
        peer_seconds: list[float] = []
        if peer is not None:
            items = gate_peer.judged_alongside(peer, items, verdicts, peer_seconds)
        judged = judge(items)
        figures[half] = corpus_table(judged, f"{half.replace('_', '-')} half: {len(products)} products "
                                            f"({', '.join(names)}), {args.side} px canvas",
                                     verdicts if peer is not None else None)
        if peer is not None:
            gate_ms, peer_ms = (1000 * float(np.median(x)) for x in ([j.seconds for j in judged], peer_seconds))
            figures[half].update(gate_ms_median=gate_ms, peer_ms_median=peer_ms)
            print(f"measurement per edit (median, one core): the gate {gate_ms:.0f} ms, the peer {peer_ms:.0f} ms")
        if half == "held_out":
            cited_cases(judged)
    if args.real_photos:
        figures["real_photos"] = real_photo_edits()
    if args.speed_images:
        figures["speed"] = gate_speed(args.speed_images)
    if args.samples:
        agreement(args.samples)
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2, default=str)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
