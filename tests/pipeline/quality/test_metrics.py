"""Quality-gate metrics on real local-engine edits and deliberately damaged copies of them.

Each damage targets one failure mode; the clean edit must pass that metric's expectation in
the shipped quality profiles (amazon_main includes edit_integrity) and the damaged copy must fail it. Reference agreement is
checked against scikit-image on small pairs.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.imaging.engine import apply_op, decode_image, encode_image
from airflow_image_catalog.imaging.engine._common import dilate
from airflow_image_catalog.pipeline.quality import metrics as qm
from airflow_image_catalog.pipeline.quality.profiles import load_profile
from airflow_image_catalog.tooling.bench.quality import Pair, reference_metrics

from .conftest import SIDE

GATE = load_profile("amazon_main")

# ---------------------------------------------------------------------------------------------
# damage: each returns a new Pair whose edit has one defect


def _with_edit(pair: Pair, edited: np.ndarray, fmt: str | None = None, quality: int = 92) -> Pair:
    fmt = fmt or qm.file_facts(pair.edited_bytes)["format"]
    data = encode_image(edited, format=fmt, quality=quality)
    return replace(pair, edited=decode_image(data), edited_bytes=data)


def _product(pair: Pair) -> np.ndarray:
    return qm.canvas_foreground(pair.edited)


def seam(pair: Pair) -> Pair:
    """A colour step at the edit boundary: the edited patch comes back 20 levels off."""
    region = dilate(pair.edit_mask, 4)
    out = pair.edited.astype(np.int16)
    out[region] += np.array([20, -14, 12], np.int16)
    return _with_edit(pair, np.clip(out, 0, 255).astype(np.uint8))


def colour_shift_outside(pair: Pair) -> Pair:
    """The 'preserved' pixels got a warm cast (mask not respected)."""
    out = pair.edited.astype(np.int16)
    outside = ~dilate(pair.edit_mask, 4)
    out[outside] += np.array([9, 2, -9], np.int16)
    return _with_edit(pair, np.clip(out, 0, 255).astype(np.uint8))


def shifted(pair: Pair) -> Pair:
    """The whole frame moved by 12 px (a model that re-renders instead of editing in place)."""
    m = np.float32([[1, 0, 12], [0, 1, 8]])
    h, w = pair.edited.shape[:2]
    return _with_edit(pair, cv2.warpAffine(pair.edited, m, (w, h), borderMode=cv2.BORDER_REPLICATE))


def off_white(pair: Pair, noise: bool = False) -> Pair:
    """The white background came back as RGB 250 grey (or white with +-3 level noise)."""
    out = pair.edited.copy()
    bg = ~_product(pair)
    if noise:
        rng = np.random.default_rng(0)
        out[bg] = np.clip(252 + rng.integers(-3, 4, (int(bg.sum()), 3)), 0, 255).astype(np.uint8)
    else:
        out[bg] = 250
    return _with_edit(pair, out, fmt="png")


def under_filled(pair: Pair, source: np.ndarray) -> Pair:
    """The product fills only 60 % of the canvas."""
    white = apply_op("white_background", source)
    canvas = apply_op("fit_canvas", white, {"width": SIDE, "height": SIDE, "product_fill": 0.6})
    return _with_edit(pair, canvas)


def blurred(pair: Pair) -> Pair:
    """The product came back soft (Gaussian sigma 2.5 over the product)."""
    region = dilate(_product(pair), 3)
    soft = cv2.GaussianBlur(pair.edited, (0, 0), 2.5)
    return _with_edit(pair, np.where(region[..., None], soft, pair.edited))


def heavy_jpeg(pair: Pair) -> Pair:
    return _with_edit(pair, pair.edited, fmt="jpeg", quality=15)


def cropped(pair: Pair) -> Pair:
    """The product is cut by the canvas edge: the framing slides right until 30 % of it is outside."""
    h, w = pair.edited.shape[:2]
    _, _, x0, x1 = qm.product_bbox(pair.edited)
    m = np.float32([[1, 0, (w - x1) + 0.3 * (x1 - x0)], [0, 1, 0]])
    return _with_edit(pair, cv2.warpAffine(pair.edited, m, (w, h), borderValue=(255, 255, 255)))


def text_painted_out(pair: Pair) -> Pair:
    """The label's lettering is inpainted away (garbled / lost text)."""
    img = pair.edited
    dark = (img.max(axis=-1) < 90) & _product(pair)
    bright = img.min(axis=-1) > 170
    letters = dark & dilate(bright & _product(pair), 6)
    out = cv2.inpaint(img, dilate(letters, 2).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    return _with_edit(pair, out)


def row(pair: Pair, **kwargs) -> dict:
    return qm.compute_metrics(
        pair.source, pair.edited, edited_bytes=pair.edited_bytes, intent=pair.intent,
        edit_mask=pair.edit_mask, target_size=pair.target_size, **kwargs,
    )  # fmt: skip


def verdict(pair: Pair, metric: str, **kwargs) -> tuple[bool | None, object]:
    r = row(pair, **kwargs)
    return GATE.check(r)[metric], r[metric]


# ---------------------------------------------------------------------------------------------
# clean edits pass every gate


@pytest.mark.parametrize("kind", ["reframe_pairs", "masked_pairs", "global_pairs"])
def test_clean_edits_pass_every_threshold(kind, request):
    for stem, pair in request.getfixturevalue(kind).items():
        r = row(pair)
        failed = {k: r[k] for k, ok in GATE.check(r).items() if ok is False}
        assert not failed, f"{kind} {stem}: {failed}"


def test_same_keys_for_every_intent(reframe_pairs, masked_pairs, global_pairs):
    stem = next(iter(reframe_pairs))
    rows = [row(p[stem]) for p in (reframe_pairs, masked_pairs, global_pairs)]
    assert [list(r) for r in rows] == [list(qm.METRIC_KEYS)] * 3
    assert rows[0]["bg_off_share"] is not None and rows[1]["bg_off_share"] is None
    assert rows[1]["seam_score"] is not None and rows[2]["seam_score"] is None
    assert rows[0]["size_ok"] is True and rows[1]["size_ok"] is None


# ---------------------------------------------------------------------------------------------
# each damage fails the metric meant for it


@pytest.mark.parametrize(
    ("kind", "damage", "metric"),
    [
        ("masked_pairs", seam, "seam_score"),
        ("masked_pairs", colour_shift_outside, "delta_e_preserved"),
        ("masked_pairs", shifted, "ssim_preserved"),
        # the canvas, judged outside the gate's own view of the product: a light grey is as wrong as a dark one
        ("reframe_pairs", off_white, "bg_off_share"),
        ("reframe_pairs", lambda p: off_white(p, noise=True), "bg_off_share"),
        # detail is compared at the source's own resolution, where a blur shows
        ("reframe_pairs", blurred, "detail_ratio"),
        ("reframe_pairs", blurred, "fine_detail_balance"),
        ("reframe_pairs", heavy_jpeg, "jpeg_quality"),
        ("reframe_pairs", heavy_jpeg, "blockiness_gain"),
        # a product cut by the canvas edge is incomplete, not merely "changed"
        ("reframe_pairs", cropped, "product_coverage"),
    ],
)
def test_damage_fails_its_metric(kind, damage, metric, request):
    for stem, pair in request.getfixturevalue(kind).items():
        clean_ok, clean = verdict(pair, metric)
        bad_ok, bad = verdict(damage(pair), metric)
        assert clean_ok is True, f"{stem}: clean {metric}={clean}"
        assert bad_ok is False, f"{stem}: damaged {metric}={bad} (clean {clean})"


def test_under_filled_frame_fails_product_fill(reframe_pairs, samples):
    for stem, pair in reframe_pairs.items():
        assert verdict(pair, "product_fill")[0] is True
        ok, value = verdict(under_filled(pair, samples[stem][0]), "product_fill")
        assert ok is False and value == pytest.approx(0.6, abs=0.01)


def test_altered_text_fails_the_printed_text_check(reframe_pairs):
    pair = reframe_pairs["box_tea"]  # the sample with the "GREEN TEA" label
    r = row(pair)
    assert r["text_lines"] >= 1 and GATE.check(r)["text_ssim"] is True, r["text_ssim"]
    bad = row(text_painted_out(pair))
    assert GATE.check(bad)["text_ssim"] is False, bad["text_ssim"]


def test_printed_text_check_is_silent_without_text(reframe_pairs):
    """No text found, no verdict: the check cannot quarantine a product that carries no lettering."""
    r = row(reframe_pairs["ball_red"])
    assert r["text_lines"] == 0 and r["text_ssim"] is None and GATE.check(r).get("text_ssim") is None


def test_ocr_similarity_on_in_place_edits(masked_pairs):
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed: OCR similarity is reported as skipped")
    pair = masked_pairs["box_tea"]
    r = row(pair, ocr=True)
    assert r["ocr_status"] == "ok" and GATE.check(r)["ocr_similarity"] is True, r["ocr_similarity"]


def test_ocr_without_text_or_tesseract_never_raises(masked_pairs, monkeypatch):
    blank = np.full((64, 64, 3), 200, np.uint8)
    if shutil.which("tesseract") is not None:
        assert qm.ocr_similarity(blank, blank) == (None, "no_text")
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    assert qm.ocr_similarity(blank, blank) == (None, "skipped: tesseract not installed")


# ---------------------------------------------------------------------------------------------
# agreement with scikit-image, regions by boolean indexing

#: stated tolerances vs scikit-image on full-resolution pairs
SSIM_TOL, PSNR_TOL, DELTA_E_TOL = 0.01, 0.1, 0.1


def _small_pairs(masked_pairs, global_pairs) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for pair in (*masked_pairs.values(), *global_pairs.values()):
        a, b = (cv2.resize(x, (384, 384), interpolation=cv2.INTER_AREA) for x in (pair.source, pair.edited))
        region = np.zeros((384, 384), bool)
        region[40:300, 60:350] = True
        out.append((a, b, region))
    return out


def test_agreement_with_scikit_image(masked_pairs, global_pairs):
    for a, b, region in _small_pairs(masked_pairs, global_pairs):
        for reg in (None, region):
            ref = reference_metrics(a, b, reg)
            assert qm.ssim(a, b, reg) == pytest.approx(ref["ssim"], abs=SSIM_TOL)
            assert qm.psnr(a, b, reg) == pytest.approx(ref["psnr"], abs=PSNR_TOL)
            assert qm.ciede2000(a, b, reg) == pytest.approx(ref["delta_e"], abs=DELTA_E_TOL)


def test_ssim_matches_skimage_map_closely():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = cv2.GaussianBlur(rng.integers(0, 256, (200, 240), np.uint8), (0, 0), 2)
    b = np.clip(a.astype(int) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert qm.ssim(a, b) == pytest.approx(ref, abs=1e-4)


def test_regions_use_boolean_indexing_not_zeroed_pixels():
    rng = np.random.default_rng(2)
    a = cv2.GaussianBlur(rng.integers(0, 256, (160, 160, 3), np.uint8), (0, 0), 3)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    region = np.zeros((160, 160), bool)
    region[30:130, 40:120] = True
    # same pixels inside the region, different content outside: the regional scores must not move
    a2, b2 = a.copy(), b.copy()
    a2[~region] = 0
    b2[~region] = 0
    inner = region.copy()
    inner[:, :] = False
    inner[35:125, 45:115] = True  # >= the 5 px window radius inside: windows never see outside pixels
    assert qm.ssim(a, b, inner) == pytest.approx(qm.ssim(a2, b2, inner), abs=1e-6)
    assert qm.psnr(a, b, region) == pytest.approx(qm.psnr(a2, b2, region), abs=1e-9)
    assert qm.ciede2000(a, b, region) == pytest.approx(qm.ciede2000(a2, b2, region), abs=1e-9)
    # while zeroing instead of indexing would inflate them: identical zeros count as perfect matches
    assert qm.ssim(a2, b2) > qm.ssim(a, b, region) + 0.1
    assert qm.psnr(a2, b2) > qm.psnr(a, b, region) + 1


def test_psnr_identical_is_capped():
    img = np.zeros((32, 32, 3), np.uint8)
    assert qm.psnr(img, img) == qm.PSNR_CAP
    assert qm.ssim(img, img) == 1.0
    assert qm.ciede2000(img, img) == 0.0


def test_delta_e2000_reference_values():
    # Sharma, Wu, Dalal (2005) test data, pairs 1, 7 and 17
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0]])
    np.testing.assert_allclose(qm.delta_e2000(lab1, lab2), [2.0425, 2.3669, 27.1492], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# smaller units


def test_product_fill_and_bbox():
    img = np.full((400, 300, 3), 255, np.uint8)
    img[50:250, 100:160] = (10, 120, 30)
    assert qm.product_bbox(img) == (50, 250, 100, 160)
    assert qm.product_fill(img) == pytest.approx(200 / 400)
    assert qm.product_fill(np.full((10, 10, 3), 255, np.uint8)) == 0.0


def test_canvas_check_finds_light_marks_and_says_where():
    """Outside the product every pixel must be the canvas colour: a 253 smudge in a corner is a fault."""
    from airflow_image_catalog.pipeline.quality._decode import Decoded
    from airflow_image_catalog.pipeline.quality.reframe import measure_reframe

    source = np.full((300, 300, 3), 200, np.uint8)
    source[60:240, 90:210] = (30, 90, 160)
    edit = np.full((400, 400, 3), 255, np.uint8)
    edit[20:380, 110:290] = (30, 90, 160)
    clean = measure_reframe(Decoded(source, None, 1, (300, 300)), Decoded(edit, None, 1, (400, 400)))
    assert clean["bg_off_share"] == 0 and clean["product_coverage"] > 0.98
    edit[330:390, 10:70] = 253
    smudged = measure_reframe(Decoded(source, None, 1, (300, 300)), Decoded(edit, None, 1, (400, 400)))
    assert smudged["bg_off_share"] > 0.02 and smudged["bg_where"] == "bottom left of the canvas"
    assert smudged["bg_colour"] == "RGB 253,253,253" and smudged["canvas_marks"] == 0  # a tint, not a mark


def test_phash_is_stable_and_distinguishes():
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), np.uint8), (0, 0), 4)
    other = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), np.uint8), (0, 0), 4)
    assert qm.phash_distance(qm.phash(img), qm.phash(np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8))) <= 2
    assert qm.phash_distance(qm.phash(img), qm.phash(other)) > 15
    assert 0 <= qm.phash(img) < 2**64


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_jpeg_quality_estimate(quality, masked_pairs):
    img = next(iter(masked_pairs.values())).edited
    for data in (encode_image(img, format="jpeg", quality=quality), _pil_jpeg(img, quality)):
        assert abs(qm.jpeg_quality(data) - quality) <= 5
        facts = qm.file_facts(data)
        assert facts["format"] == "jpeg" and (facts["width"], facts["height"]) == img.shape[1::-1]


def _pil_jpeg(img: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_file_facts_icc_and_non_jpeg():
    img = np.full((20, 30, 3), 128, np.uint8)
    png = encode_image(img, format="png")
    facts = qm.file_facts(png)
    assert facts["format"] == "png" and facts["has_icc"] and facts["icc_is_srgb"] and not facts["icc_assumed"]
    assert qm.jpeg_quality(png) is None
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    bare = qm.file_facts(buf.getvalue())
    assert bare["icc_is_srgb"] is True and bare["icc_assumed"] is True and bare["has_icc"] is False
    assert qm.file_facts(b"not an image")["format"] is None
    assert qm.jpeg_quality(b"") is None


def test_blockiness_clean_vs_blocky():
    rng = np.random.default_rng(4)
    img = cv2.GaussianBlur(rng.integers(0, 256, (256, 256, 3), np.uint8), (0, 0), 3)
    blocky = decode_image(encode_image(img, format="jpeg", quality=10))
    assert qm.blockiness(img) == pytest.approx(1.0, abs=0.1)
    assert qm.blockiness(blocky) > qm.blockiness(img) + 0.3
