"""The gate's detectors for faint faults, each on defects generated here and judged as ``make bench-quality`` does.

A light halo a few pixels wide hidden in the gate's "may be product" margin (and, told apart from it, a
soft photo's own outline blurred), a small hole in a narrow product, a translucent watermark on a light product (and a white one that shows only where it
leaves a white label for the kraft around it), a brushed can upscaled (its streaks keep much of the fine
band; the finest detail against the coarser shows the loss), a flat product (no texture for the detail
tiles) blurred or upscaled, and the blockiness of a smooth product saved as a good JPEG: the gate used to
pass each of these defects and quarantine the good JPEG.
"""

from __future__ import annotations

import numpy as np
import pytest

from airflow_image_catalog.imaging.engine import decode_image, encode_image
from airflow_image_catalog.pipeline.quality import metrics as qm
from airflow_image_catalog.tooling.bench import corpus
from airflow_image_catalog.tooling.bench.quality import judge

SIDE = 1000


@pytest.fixture(scope="module")
def judged():
    """Clean edits and faint defects of a photo-studio bottle, a cut-out horse and a horse on a backdrop."""
    items = []
    for name, kinds in (("bottle_amber@7", ("halo", "hole")), ("horse_coffee_transparent", ("halo",)),
                        ("horse_chelsea", ("watermark", "halo")), ("mug_yellow@7", ("blurred", "resolution_loss")),
                        ("coin_1", ("halo", "hole", "part_missing", "blurred", "resolution_loss")),
                        ("box_kraft@11", ("watermark",)),
                        ("can_silver@7", ("resolution_loss",)), ("ball_teal@7", ("halo",))):
        items += [i for i in corpus.items([corpus.product(name)], SIDE, kinds=kinds, engine=False)]
    return {(j.product, j.kind, j.item.rsplit("/", 1)[-1]): j for j in judge(items)}


def _one(judged, product, kind):
    return next(j for (p, k, _), j in judged.items() if p == product and k == kind)


@pytest.mark.parametrize("product", ["bottle_amber@7", "horse_chelsea", "coin_1", "ball_teal@7"])
def test_a_light_halo_beside_the_outline_is_a_background_fault(judged, product):
    """A rim of old-backdrop grey 6-12 px wide just outside the product: the source at its own
    resolution says the rim is no product, so the light pixels there are the edit's. The coin is a
    small soft photo enlarged about 3.5x: its own edge fades over several edit pixels and passes
    (``test_clean_edits_pass_the_new_detectors``), the halo beyond that fade does not. The teal ball's
    halo is thin (a quarter of it even-toned) and its inner edges read 1.06x, as a clean edit's may:
    still a halo, not the product's outline blurred."""
    j = _one(judged, product, "halo")
    assert j.quarantined and "background" in j.categories, j.reasons
    assert any(r.startswith("A light rim") and " px wide around the product" in r for r in j.reasons), j.reasons


@pytest.mark.parametrize("kind", ["blurred", "resolution_loss"])
def test_a_soft_photo_blurred_or_upscaled_is_a_detail_fault_not_a_halo(judged, kind):
    """The soft coin photo blurred (or rendered small and upscaled) fades out beyond its own edge: the
    halo check sees a light rim there, just as round a painted halo. But its rim fades rather than
    lying flat, and its inner edges went wider than the source's, which a halo painted round the product
    leaves as they were: the reviewer is sent to the blur, not to the background."""
    j = _one(judged, "coin_1", kind)
    assert j.quarantined and "detail" in j.categories and "background" not in j.categories, j.reasons
    assert any(r.startswith("The product's outline is blurred: it fades") for r in j.reasons), j.reasons


def test_the_halo_of_a_cut_out_is_measured_against_its_alpha(judged):
    j = _one(judged, "horse_coffee_transparent", "halo")
    assert j.quarantined and "background" in j.categories, j.reasons


def test_a_small_hole_in_a_narrow_product_is_a_completeness_fault(judged):
    """A hole of a fifth of a percent of the bottle: below the lost-piece share, but the canvas shows
    through with product all round it."""
    j = _one(judged, "bottle_amber@7", "hole")
    assert j.quarantined and "completeness" in j.categories, j.reasons
    assert any("(a hole)" in r for r in j.reasons), j.reasons


@pytest.mark.parametrize("kind", ["hole", "part_missing"])
def test_a_neutral_product_on_a_neutral_backdrop_can_lose_a_part(judged, kind):
    """A grey coin on a grey backdrop has the backdrop's chromaticity, 2-4x as bright: where the canvas
    shows through it, the source is product, not the backdrop in another light (a handle opening)."""
    j = _one(judged, "coin_1", kind)
    assert j.quarantined and "completeness" in j.categories, j.reasons
    assert any(r.startswith("Part of the product is missing") for r in j.reasons), j.reasons


def test_a_translucent_watermark_on_the_product_is_an_overlay(judged):
    j = _one(judged, "horse_chelsea", "watermark")
    assert j.quarantined and "overlay" in j.categories, j.reasons
    assert any(r.startswith("Something was painted over the product") and "centre of the product" in r
               for r in j.reasons), j.reasons


def test_a_white_watermark_that_shows_only_off_the_label_is_an_overlay(judged):
    """A white "SAMPLE" at 35-50 % across a kraft box with a white label: on the label it is invisible,
    on the kraft it lightens two letters by 30-80 levels, under half a percent of the product. The
    gate once allowed 1 % (a corpus coin that kept a dark ring of backdrop read 0.8 %); the clean edits
    of the tuning half and the gallery's right engine edits read at most 0.23 %."""
    j = _one(judged, "box_kraft@11", "watermark")
    assert j.quarantined and "overlay" in j.categories, j.reasons
    assert any(r.startswith("Something was painted over the product") for r in j.reasons), j.reasons


def test_a_brushed_can_upscaled_lost_its_finest_detail(judged):
    """A brushed silver can rendered at 1/2.5 of its resolution and upscaled: its streaks are coarse enough
    that the fine band keeps 79 % of the source's energy (clean edits of the same can read 98-158 %), but
    what is finer than 0.6 px went first: against what is finer than 2 px it keeps half the source's share."""
    j = _one(judged, "can_silver@7", "resolution_loss")
    assert j.quarantined and "detail" in j.categories, j.reasons
    assert any(r.startswith("The product's finest detail is gone") for r in j.reasons), j.reasons


def test_clean_edits_pass_the_new_detectors(judged):
    clean = [(j.item, j.reasons) for j in judged.values() if j.kind == "clean" and j.quarantined]
    assert not clean, clean
    assert sum(j.kind == "clean" for j in judged.values()) == 24


@pytest.mark.parametrize("kind", ["blurred", "resolution_loss"])
def test_a_flat_product_blurred_or_upscaled_has_soft_edges(judged, kind):
    """A plain yellow mug: its tiles are flat (the fine-detail check has no verdict), the rim of its handle is not."""
    j = _one(judged, "mug_yellow@7", kind)
    assert j.quarantined and "detail" in j.categories, j.reasons
    assert any(r.startswith("The product's edges are soft") for r in j.reasons), j.reasons


def _smooth(noise: float) -> np.ndarray:
    """A brushed-metal can: a smooth tonal sweep with a little grain (no detail for JPEG to block up)."""
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 512, dtype=np.float32)[None, :].repeat(512, 0)
    base = 150 + 60 * np.sin(x * 3.1) + rng.normal(0, noise, x.shape)
    return np.clip(np.stack([base, base * 1.01, base * 1.03], -1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("noise", [0.0, 0.6])
def test_a_smooth_product_saved_as_a_good_jpeg_is_not_blocky(noise):
    """Quality 92 leaves hundredths of a level at block edges of a smooth sweep: invisible, so not
    blocky (the ratio of those hundredths once read 2-3x); content blocked up by an earlier quality-15
    pass and saved again at 92 (tables say 92) still is."""
    source = _smooth(noise)
    good = decode_image(encode_image(source, format="jpeg", quality=92))
    resaved = decode_image(encode_image(decode_image(encode_image(source, format="jpeg", quality=15)),
                                        format="jpeg", quality=92))
    limit = 1.45  # edit_integrity's blockiness_gain
    assert qm.blockiness(good) / qm.blockiness(source) < limit
    assert qm.blockiness(resaved) / qm.blockiness(source) > 1.5 * limit


def test_a_faintly_noisy_canvas_is_seen_through_a_reduced_decode():
    """A canvas with a few levels of noise behind a small source product: the 2000 px edit is decoded at
    1/4 (the source holds no finer detail), which averages the noise to 254 nearly everywhere. A flat
    white canvas decodes to exactly 255 at any scale, so on white no level of slack is allowed."""
    from airflow_image_catalog.pipeline.quality.reframe import decode_pair

    product = corpus.product("coin_1")
    items = [i for i in corpus.items([product], 2000, kinds=("noisy_canvas",), engine=False)
             if i.kind == "noisy_canvas" or i.name.endswith("/q92")]
    assert all(decode_pair(product.source_bytes(), i.edited_bytes)[1].scale == 4 for i in items)
    judged = {j.kind: j for j in judge(items)}
    noisy, clean = judged["noisy_canvas"], judged["clean"]
    assert noisy.quarantined and "background" in noisy.categories, noisy.reasons
    assert any(r.startswith("The background is not pure white") for r in noisy.reasons), noisy.reasons
    assert not clean.quarantined, clean.reasons


@pytest.mark.parametrize("subsampling", [0, 2])
def test_a_flat_white_jpeg_decodes_to_pure_white_at_every_dct_scale(subsampling):
    """The fact the purity check's zero slack on white rests on, held against the real decoder (libjpeg-turbo
    through Pillow): from quality 46 up a flat #FFFFFF block comes back 255 at full size and at 1/2, 1/4, 1/8
    (the DC step rounds back above 254.5). Below that some qualities give 253-254, and lossy WebP does at
    some qualities up to 68, which is why only a JPEG gets no slack."""
    import io

    from PIL import Image

    from airflow_image_catalog.pipeline.quality._decode import decode

    white = Image.fromarray(np.full((512, 512, 3), 255, np.uint8))

    def darkest(fmt: str, quality: int, min_side: int, **kw) -> int:
        buf = io.BytesIO()
        white.save(buf, fmt, quality=quality, **kw)
        return int(decode(buf.getvalue(), min_side=min_side).rgb.min())

    assert {darkest("JPEG", q, s, subsampling=subsampling) for q in range(46, 101) for s in (512, 256, 128, 64)} == {255}
    assert darkest("JPEG", 20, 512, subsampling=subsampling) < 255
    assert darkest("WEBP", 60, 512) == 254


def test_a_clean_edit_saved_as_lossy_webp_keeps_a_white_canvas():
    """Lossy WebP at quality 60 decodes parts of the coin's white canvas to 254 (0.3 % of it, past the
    purity limit of 0.2 %): that is the format's, not a background fault, so the purity check keeps one level
    of slack for every format but JPEG. A reason about its blocks names the format it was saved in."""
    import io

    from PIL import Image

    from airflow_image_catalog.pipeline.quality.profiles import load_profile
    from airflow_image_catalog.pipeline.quality.reasons import reason_for

    product = corpus.product("coin_0")
    clean = next(i for i in corpus.items([product], SIDE, kinds=(), engine=False) if i.name.endswith("/q92"))
    buf = io.BytesIO()
    Image.fromarray(decode_image(clean.edited_bytes)).save(buf, "WEBP", quality=60)
    webp = corpus.Item(product, "clean", "webp60", buf.getvalue())
    judged = {j.item.rsplit("/", 1)[-1]: j for j in judge([clean, webp], profile_ref="edit_integrity")}
    assert (decode_image(webp.edited_bytes)[:40] == 254).any()  # the canvas's top rows
    assert "background" not in judged["webp60"].categories, judged["webp60"].reasons
    assert not judged["q92"].quarantined, judged["q92"].reasons
    blocks = next(e for e in load_profile("edit_integrity").expectations if e.metric == "blockiness_gain")
    row = {"blockiness_gain": 2.02, "compression": qm.compression_label("webp", None)}
    assert reason_for(blocks, row).endswith("as visible as in the source (saved as a WebP)")
    assert qm.compression_label("jpeg", 65) == "a JPEG at quality 65"
