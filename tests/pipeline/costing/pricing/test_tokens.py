"""Token estimators: every documented number reproduced exactly, the estimates' properties checked."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_image_catalog.pipeline.costing.pricing import PricingError
from airflow_image_catalog.pipeline.costing.pricing.tokens import (
    CALCULATOR_BAND,
    ESTIMATE_BAND,
    FIXED_SIZES,
    QUALITIES,
    gpt_image_2_estimate,
    gpt_image_2_input_tokens,
    input_image_tokens,
    output_tokens,
    partial_image_tokens,
    prompt_tokens,
    request_tokens,
    tile_count,
)

# DESIGN.md "Tokens and prices": output tokens (gpt-image-1 family), low / medium / high
DOCUMENTED_OUTPUT = {
    "1024x1024": (272, 1056, 4160),
    "1024x1536": (408, 1584, 6240),
    "1536x1024": (400, 1568, 6208),
}
sides = st.integers(min_value=1, max_value=8000)
qualities = st.sampled_from(QUALITIES)


def test_1024_square_low_fidelity_is_194_tokens():
    # fit in 2048 (no change), shortest side to 512 -> 512x512, one tile: 65 + 129 x 1
    assert tile_count(1024, 1024) == 1
    assert input_image_tokens(1024, 1024, fidelity="low", model="gpt-image-1.5") == 65 + 129 * 1 == 194


def test_high_fidelity_adds_4160_square_6240_otherwise():
    assert input_image_tokens(1024, 1024, fidelity="high") == 194 + 4160
    assert input_image_tokens(1536, 1024, fidelity="high") - input_image_tokens(1536, 1024) == 6240
    assert input_image_tokens(1024, 1536, fidelity="high") - input_image_tokens(1024, 1536) == 6240


def test_tile_formula_worked_examples():
    # 1536x1024 -> shortest to 512 -> 768x512 -> 2x1 tiles
    assert tile_count(1536, 1024) == 2 and input_image_tokens(1536, 1024) == 65 + 129 * 2
    # 4096x2048 -> fit in 2048: 2048x1024 -> 1024x512 -> 2 tiles
    assert tile_count(4096, 2048) == 2
    # 8000x1000 -> fit: 2048x256 (short side already under 512) -> 4 tiles
    assert tile_count(8000, 1000) == 4
    # small inputs are not blown up: 300x200 is one tile
    assert tile_count(300, 200) == 1


def test_input_fidelity_defaults_and_gpt_image_2_is_always_high():
    assert input_image_tokens(1024, 1024) == 194  # API default: low
    for fidelity in (None, "low", "high"):  # gpt-image-2 ignores fidelity: one count for all
        assert input_image_tokens(1024, 1024, fidelity=fidelity, model="gpt-image-2") == 1024
    with pytest.raises(PricingError, match="fidelity"):
        input_image_tokens(1024, 1024, fidelity="ultra")


def test_gpt_image_2_input_patches_worked_examples():
    # the Developer Community measurement ("OpenAI must document the input image pricing of gpt-image-2"):
    # 32-px patches; magnified (at most 2x) towards a 1024-px long side; canvas ratio capped at 3:1;
    # a 1,536-patch budget
    assert gpt_image_2_input_tokens(1024, 1024) == 32 * 32
    assert gpt_image_2_input_tokens(512, 512) == 32 * 32  # magnified 2x
    assert gpt_image_2_input_tokens(256, 256) == 16 * 16  # magnified only 2x: 512x512
    assert gpt_image_2_input_tokens(1536, 1024) == 48 * 32
    assert gpt_image_2_input_tokens(3000, 500) == 47 * 16  # the canvas is capped at 1500x500
    assert gpt_image_2_input_tokens(4000, 3000) == 1536  # shrunk to the patch budget


@pytest.mark.parametrize("size", sorted(DOCUMENTED_OUTPUT))
@pytest.mark.parametrize("index", range(3))
def test_output_table_all_nine_entries(size, index):
    assert output_tokens(size, QUALITIES[index]) == DOCUMENTED_OUTPUT[size][index]
    width, height = (int(v) for v in size.split("x"))
    assert output_tokens((width, height), QUALITIES[index]) == DOCUMENTED_OUTPUT[size][index]


def test_auto_quality_is_high_and_bad_quality_is_named():
    # the API picks the quality with auto; pricing it as high keeps a budget from assuming the cheaper one
    assert output_tokens("1024x1024", "auto") == output_tokens("1024x1024", None) == 4160
    with pytest.raises(PricingError, match="quality"):
        output_tokens("1024x1024", "ultra")
    with pytest.raises(PricingError, match="size"):
        output_tokens("auto", "low")


# OpenAI's gpt-image-2 pricing calculator as quoted in the OpenAI Developer Community ("ChatGPT Images 2.0"
# launch thread: 1024x1024 high 7,024, 1536x1024 5,488, 1792x1024 5,063, 3584x2048 12,329)
CALCULATOR = {("1024x1024", "high"): 7024, ("1536x1024", "high"): 5488, ("1024x1536", "high"): 5488,
              ("1792x1024", "high"): 5063, ("3584x2048", "high"): 12329}


@pytest.mark.parametrize(("size", "quality"), sorted(CALCULATOR))
def test_gpt_image_2_output_tokens_are_openais_calculator(size, quality):
    assert output_tokens(size, quality, model="gpt-image-2") == CALCULATOR[(size, quality)]
    assert output_tokens(size, quality, model="gpt-image-2-2026-04-21") == CALCULATOR[(size, quality)]


def test_custom_size_extends_the_documented_grid():
    # medium uses 32-px cells: 2000x2000 -> ceil(62.5)=63 rows x (63 + 1) columns
    assert output_tokens("2000x2000", "medium") == 63 * 64
    # about proportional to area: within 2% of scaling the 1024x1024 entry by pixels
    area_scaled = 1056 * 2000 * 2000 / (1024 * 1024)
    assert abs(output_tokens("2000x2000", "medium") - area_scaled) / area_scaled < 0.02


def test_partial_images_add_100_output_tokens_each():
    assert [partial_image_tokens(n) for n in range(4)] == [0, 100, 200, 300]
    base = request_tokens("gpt-image-1.5", [(1024, 1024)], "x", "1024x1024", "low")
    streamed = request_tokens("gpt-image-1.5", [(1024, 1024)], "x", "1024x1024", "low", partial_images=2)
    assert streamed.tokens.image_out == base.tokens.image_out + 200 == 272 + 200


def test_prompt_tokens_is_a_stated_four_chars_per_token():
    assert prompt_tokens("") == 1 and prompt_tokens("abcd") == 1 and prompt_tokens("abcde") == 2
    assert prompt_tokens("x" * 400) == 100


def test_request_tokens_documented_parts_have_no_band():
    estimate = request_tokens("gpt-image-1.5", [(1024, 1024), (1536, 1024)], "y" * 40, "1024x1536", "high",
                              fidelity="high", n=2)
    assert estimate.tokens.image_in == (194 + 4160) + (65 + 129 * 2 + 6240)
    assert estimate.tokens.image_out == 2 * 6240 and estimate.tokens.text_in == 10
    assert estimate.low.image_in == estimate.tokens.image_in == estimate.high.image_in
    assert estimate.low.image_out == estimate.tokens.image_out == estimate.high.image_out
    assert estimate.low.text_in < 10 < estimate.high.text_in  # the text heuristic carries a band
    assert estimate.tokens.as_usage() == {
        "input_tokens": estimate.tokens.image_in + 10,
        "input_tokens_details": {"image_tokens": estimate.tokens.image_in, "text_tokens": 10},
        "output_tokens": 2 * 6240, "total_tokens": estimate.tokens.total}


def test_gpt_image_2_estimate_states_its_band():
    estimate = gpt_image_2_estimate([(1024, 1024)], "z" * 40, "1024x1024", "medium")
    assert estimate.tokens.image_in == 1024 and estimate.tokens.image_out == 1756
    assert estimate.low.image_in == math.floor(1024 * (1 - ESTIMATE_BAND))
    assert estimate.high.image_out == math.ceil(1756 * (1 + CALCULATOR_BAND))
    assert any("no published formula" in note for note in estimate.basis)
    assert any("pricing calculator" in note for note in estimate.basis)


# -- properties -------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(sides, sides, st.integers(1, 8000), st.integers(1, 8000), qualities)
def test_output_tokens_monotone_in_size(width, height, more_w, more_h, quality):
    assert output_tokens((width, height), quality) <= output_tokens((width + more_w, height + more_h), quality)
    assert output_tokens((width, height), quality) <= output_tokens((width + more_w, height), quality)


@settings(max_examples=200, deadline=None)
@given(sides, sides)
def test_output_tokens_monotone_in_quality(width, height):
    low, medium, high = (output_tokens((width, height), q) for q in QUALITIES)
    assert 0 < low <= medium <= high


@settings(max_examples=300, deadline=None)
@given(sides, sides, st.sampled_from(["low", "high"]))
def test_tile_counts_consistent(width, height, fidelity):
    tiles = tile_count(width, height)
    # after the fit and the shrink the short side is at most 512 and the long side at most 2048
    assert 1 <= tiles <= 4 and tiles == tile_count(height, width)
    extra = 0 if fidelity == "low" else (4160 if width == height else 6240)
    assert input_image_tokens(width, height, fidelity=fidelity) == 65 + 129 * tiles + extra


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(2, 8))
def test_input_tokens_monotone_when_an_image_grows(width, height, factor):
    # the tile formula depends on shape, not only size (a 1000x512 strip costs more than a 1000x1000
    # square); an image scaled up at the same shape never costs fewer tokens
    assert input_image_tokens(width, height) <= input_image_tokens(width * factor, height * factor)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(sides, sides), min_size=1, max_size=4), st.text(max_size=300),
       st.tuples(sides, sides), qualities, st.integers(1, 3), st.integers(0, 3),
       st.sampled_from(["gpt-image-1.5", "gpt-image-2"]))
def test_band_brackets_the_estimate(inputs, prompt, size, quality, n, partial, model):
    estimate = request_tokens(model, inputs, prompt, size, quality, n=n, partial_images=partial)
    for part in ("image_in", "text_in", "image_out"):
        assert 0 <= getattr(estimate.low, part) <= getattr(estimate.tokens, part) <= getattr(estimate.high, part)


def test_fixed_sizes_are_the_documented_ones():
    assert {f"{w}x{h}" for w, h in FIXED_SIZES} == set(DOCUMENTED_OUTPUT)
