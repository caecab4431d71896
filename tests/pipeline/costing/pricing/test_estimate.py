"""Estimates and actuals: worked examples, the seed review's figures, properties, backend usage records."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_image_catalog.backends.bfl import BFLBackend
from airflow_image_catalog.backends.openai_images import OpenAIImagesBackend
from airflow_image_catalog.pipeline.costing.pricing import (
    PricingError,
    Tokens,
    cost_of_usage,
    estimate_edit,
    estimate_recipe,
    load_prices,
    token_usd,
)
from airflow_image_catalog.recipes import load_recipe, parse_recipe

PROMPT_40 = "Put the product on a pure white backdrop"  # 40 characters: 10 text tokens
# The shipped marketplace recipe's first prompt: what a catalog refresh actually sends
WHITE_BACKGROUND = load_recipe("marketplace_white_square").steps[0].prompt


def edit(model="gpt-image-2", quality="medium", backend="openai", **kwargs):
    options = {"input_sizes": [(1024, 1024)], "prompt": WHITE_BACKGROUND, "size": "1024x1024",
               "quality": quality, **kwargs}
    return estimate_edit(backend, model, **options)


def test_worked_example_gpt_image_1_5_medium_1024_edit():
    assert len(PROMPT_40) == 40
    estimate = estimate_edit("openai", "gpt-image-1.5", input_sizes=[(1024, 1024)], prompt=PROMPT_40,
                             size="1024x1024", quality="medium")
    # 194 image tokens in at $8/1M + 10 text tokens at $5/1M + 1,056 image tokens out at $32/1M
    by_hand = 194 * 8 / 1e6 + 10 * 5 / 1e6 + 1056 * 32 / 1e6
    assert by_hand == pytest.approx(0.035394, abs=1e-12)
    assert estimate.usd == pytest.approx(by_hand, abs=1e-9)
    assert estimate.tokens == Tokens(image_in=194, text_in=10, image_out=1056)
    # only the prompt's text tokens are an estimate: the band is a fraction of a cent
    assert estimate.low_usd < estimate.usd < estimate.high_usd < estimate.usd + 0.0001


# OpenAI's per-image prices for gpt-image-2 (the API pricing page, developers.openai.com/api/docs/pricing
# #image-generation, as quoted by yingtu.ai "GPT Image 2 Cost Per Image" and DESIGN.md): output only
PUBLISHED_GPT_IMAGE_2 = {("1024x1024", "low"): 0.006, ("1024x1024", "medium"): 0.053, ("1024x1024", "high"): 0.211,
                         ("1024x1536", "low"): 0.005, ("1024x1536", "medium"): 0.041, ("1024x1536", "high"): 0.165,
                         ("1536x1024", "low"): 0.005, ("1536x1024", "medium"): 0.041, ("1536x1024", "high"): 0.165}


@pytest.mark.parametrize(("size", "quality"), sorted(PUBLISHED_GPT_IMAGE_2))
def test_gpt_image_2_output_matches_openais_published_per_image_prices(size, quality):
    published = PUBLISHED_GPT_IMAGE_2[(size, quality)]
    estimate = estimate_edit("openai", "gpt-image-2", input_sizes=[(1024, 1024)], prompt="", size=size, quality=quality)
    output_usd = estimate.tokens.image_out * 30 / 1e6
    # the page prints 3 decimals: our figure rounds to it, and is within 5% (or half a printed digit)
    assert round(output_usd, 3) == published
    assert abs(output_usd - published) <= max(0.05 * published, 0.0005)


def test_seed_review_1024_edit_costs_3_to_8_cents_at_medium_on_gpt_image_2():
    # Stated settings: one 1024x1024 source, size 1024x1024, the marketplace white-background prompt,
    # gpt-image-2, synchronous API. The review's "typical" range holds for medium quality; with
    # OpenAI's published gpt-image-2 figures low quality is cheaper than the review says.
    low, medium, high = (edit(quality=q) for q in ("low", "medium", "high"))
    assert 0.03 <= medium.usd <= 0.08 and low.usd < 0.03 < 0.08 < high.usd
    # 1,024 input patches at $8/1M + 1,756 output tokens at $30/1M + the prompt at $5/1M
    assert medium.usd == pytest.approx(1024 * 8 / 1e6 + 1756 * 30 / 1e6 + medium.tokens.text_in * 5 / 1e6, abs=1e-9)


def test_seed_review_10000_edits_a_day_cost_300_to_800_on_gpt_image_2():
    day = edit(quality="medium").times(10_000)
    assert 300 <= day.usd <= 800 and day.requests == 10_000
    # through the Batch API the same day costs half (the review prices synchronous calls)
    assert edit(quality="medium", batch=True).times(10_000).usd == pytest.approx(day.usd / 2, abs=1e-6)


def test_batch_is_half_price_and_openai_batch_implies_it():
    sync, batch = edit(), edit(batch=True)
    assert (batch.usd, batch.low_usd, batch.high_usd) == pytest.approx(
        (sync.usd / 2, sync.low_usd / 2, sync.high_usd / 2), abs=1e-9)
    assert edit(backend="openai_batch").usd == batch.usd and batch.batch


def test_per_image_providers():
    assert estimate_edit("bfl", "flux-kontext-pro", input_sizes=[(1024, 1024)]).usd == 0.04
    assert estimate_edit("bfl", "flux-kontext-max", input_sizes=[(1024, 1024)]).usd == 0.08
    assert estimate_edit("recraft", "recraftv3", input_sizes=[]).usd == 0.04
    firefly = estimate_edit("firefly", "firefly-fill-v3", input_sizes=[(1024, 1024)])
    assert firefly.usd == 0.04 and any(note.startswith("assumption:") for note in firefly.basis)
    local = estimate_edit("local", None, input_sizes=[(4000, 3000)], prompt="anything")
    assert local.usd == local.high_usd == 0.0
    with pytest.raises(PricingError, match=r"no pricing for backend 'stability' \(known: openai"):
        estimate_edit("stability", "sd3", input_sizes=[(1, 1)])


def test_auto_size_is_priced_as_the_nearest_fixed_size():
    estimate = estimate_edit("openai", "gpt-image-1.5", input_sizes=[(1600, 1200)], prompt="x", size="auto",
                             quality="low")
    assert estimate.size == "1536x1024" and estimate.tokens.image_out == 400
    assert any("size auto" in note for note in estimate.basis)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["gpt-image-2", "gpt-image-1.5", "gpt-image-1-mini"]),
       st.lists(st.tuples(st.integers(16, 6000), st.integers(16, 6000)), min_size=1, max_size=3),
       st.sampled_from(["1024x1024", "1536x1024", "1024x1536", "2048x1152", "auto"]),
       st.sampled_from(["low", "medium", "high", "auto"]), st.integers(1, 4), st.integers(0, 3),
       st.sampled_from(["low", "high"]))
def test_costs_are_non_negative_banded_and_batch_halves_them(model, inputs, size, quality, n, partial, fidelity):
    args = {"input_sizes": inputs, "prompt": "Brighten it.", "size": size, "quality": quality, "n": n,
            "partial_images": partial, "fidelity": fidelity}
    sync = estimate_edit("openai", model, **args)
    batch = estimate_edit("openai", model, batch=True, **args)
    assert 0 < sync.low_usd <= sync.usd <= sync.high_usd
    assert batch.usd == pytest.approx(sync.usd * 0.5, abs=1e-9)
    assert batch.high_usd == pytest.approx(sync.high_usd * 0.5, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["gpt-image-2", "gpt-image-1.5"]), st.sampled_from(["1024x1024", "1536x1024", "1024x1536"]))
def test_cost_monotone_in_quality(model, size):
    costs = [estimate_edit("openai", model, input_sizes=[(800, 800)], prompt="p", size=size, quality=q).usd
             for q in ("low", "medium", "high")]
    assert costs == sorted(costs)


# -- recipes ----------------------------------------------------------------------------------------
def test_recipe_sums_its_steps_and_chains_sizes():
    recipe = load_recipe("marketplace_white_square")  # white background (auto size), then 2000x2000
    estimate = estimate_recipe(recipe, "openai", "gpt-image-2", source_size=(1600, 1200))
    first, second = estimate.steps
    assert first.size == "1536x1024" and second.size == "2000x2000"
    assert first == edit_step(recipe, 0, [(1600, 1200)], "auto")
    assert second.usd == edit_step(recipe, 1, [(1536, 1024)], "2000x2000").usd
    assert estimate.usd == pytest.approx(first.usd + second.usd, abs=1e-9) and estimate.requests == 2
    assert estimate.tokens == first.tokens + second.tokens
    assert estimate.to_dict()["steps"][1]["size"] == "2000x2000"


def edit_step(recipe, index, inputs, size):
    return estimate_edit("openai", "gpt-image-2", input_sizes=inputs, prompt=recipe.steps[index].prompt, size=size,
                         quality="auto")


def test_recipe_settings_and_references():
    recipe = load_recipe("color_match_reference")
    ref = recipe.steps[0].reference_images[0]
    with_ref = estimate_recipe(recipe, "openai", "gpt-image-1.5", source_size=(1024, 1024),
                               reference_sizes={ref: (1536, 1024)},
                               settings={"size": "1024x1024", "quality": "high", "input_fidelity": "high"})
    assert with_ref.tokens.image_in == (194 + 4160) + (65 + 129 * 2 + 6240)
    assert with_ref.tokens.image_out == 4160 and with_ref.size == "1024x1024"
    guessed = estimate_recipe(recipe, "openai", "gpt-image-1.5", source_size=(1024, 1024))
    assert any("size unknown" in note for note in guessed.basis)
    with pytest.raises(PricingError, match="not valid for gpt-image-1.5"):
        estimate_recipe(recipe, "openai", "gpt-image-1.5", source_size=(1024, 1024), settings={"size": "2000x2000"})


def test_flux_2_is_priced_per_megapixel_of_output_and_inputs():
    # docs.bfl.ai/quick_start/pricing: FLUX.2 [pro] editing "from $0.045" = 3 credits for the first output
    # MP + 1.5 for the one 1 MP input; [max] 7 + 3
    assert estimate_edit("bfl", "flux-2-pro", input_sizes=[(1024, 1024)]).usd == pytest.approx(0.045)
    assert estimate_edit("bfl", "flux-2-max", input_sizes=[(1024, 1024)]).usd == pytest.approx(0.10)
    # a 2048x2048 output (4 MP) from a 1 MP image and a 1500x1500 reference (2.15 MP -> 3 MP):
    # 3 + 1.5 x (3 further output MP + 1 + 3 input MP) = 13.5 credits
    bigger = estimate_edit("bfl", "flux-2-pro", input_sizes=[(1024, 1024), (1500, 1500)], size="2048x2048")
    assert bigger.usd == pytest.approx(0.135) and any("per megapixel" in note for note in bigger.basis)
    # no size: the output is priced at the input's size (what BFL returns by default)
    assert estimate_edit("bfl", "flux-2-pro", input_sizes=[(2048, 2048)]).usd == pytest.approx((3 + 1.5 * 7) / 100)


def test_recipe_on_per_image_providers_and_drift_note():
    recipe = load_recipe("campaign_style_look")  # three steps, drift control
    assert estimate_recipe(recipe, "bfl", "flux-kontext-pro", source_size=(800, 800)).usd == pytest.approx(0.12)
    assert estimate_recipe(recipe, "local", None, source_size=(800, 800)).usd == 0.0
    batch = estimate_recipe(recipe, "openai_batch", "gpt-image-1-mini", source_size=(800, 800))
    sync = estimate_recipe(recipe, "openai", "gpt-image-1-mini", source_size=(800, 800))
    assert batch.usd == pytest.approx(sync.usd / 2, abs=1e-9)
    assert any("drift regeneration" in note for note in sync.basis)


def test_recipe_from_a_file(tmp_path):
    recipe = parse_recipe({"name": "t", "output": {"format": "png", "size": "1024x1536"}, "steps": [
        {"id": "a", "prompt": PROMPT_40, "local": {"op": "look", "params": {"name": "warm"}}}]},
        origin=(tmp_path / "r.yaml").as_uri())
    estimate = estimate_recipe(recipe, "openai", "gpt-image-1.5", source_size=(1000, 1500),
                               settings={"quality": "low"})
    assert estimate.size == "1024x1536" and estimate.tokens == Tokens(image_in=65 + 129 * 2, text_in=10,
                                                                       image_out=408)


# -- actuals: the backends' usage records ---------------------------------------------------------------
def openai_record(model="gpt-image-1.5", *, batch=False, usage=None):
    backend = OpenAIImagesBackend(None, model=model)  # usage_record never touches the transport
    usage = Tokens(image_in=194, text_in=12, image_out=1056).as_usage() if usage is None else usage
    return backend.usage_record("white_background", usage, batch=batch)


def test_cost_of_openai_usage_records():
    record = openai_record()
    assert set(record) >= {"step", "provider", "model", "images", "batch", "input_tokens", "input_image_tokens",
                           "input_text_tokens", "output_tokens"}
    assert cost_of_usage(record) == pytest.approx(194 * 8e-6 + 12 * 5e-6 + 1056 * 32e-6, abs=1e-9)
    assert cost_of_usage(openai_record(batch=True)) == pytest.approx(cost_of_usage(record) / 2, abs=1e-9)
    snapshot = openai_record("gpt-image-1.5-2025-12-16")
    assert cost_of_usage(snapshot) == cost_of_usage(record)
    # a ledger record booked on gpt-image-1 before its shut-down is still priced at its own rates
    old = {**record, "model": "gpt-image-1-2025-04-23"}
    assert cost_of_usage(old) == pytest.approx(194 * 10e-6 + 12 * 5e-6 + 1056 * 40e-6, abs=1e-9)


def test_shut_down_and_unknown_models_are_refused_at_the_estimate():
    for model in ("gpt-image-1", "gpt-image-1-2025-04-23"):
        with pytest.raises(PricingError, match=r"shut down on 2026-10-23.*use gpt-image-2"):
            estimate_edit("openai", model, input_sizes=[(1024, 1024)], prompt="p", size="1024x1024")
    # a new name is refused, never priced as the model it resembles
    with pytest.raises(PricingError, match=r"no price for openai model 'gpt-image-2.5'"):
        estimate_edit("openai", "gpt-image-2.5", input_sizes=[(1024, 1024)], prompt="p", size="1024x1024")
    assert edit(model="gpt-image-2-2026-04-21").usd == edit().usd  # a dated snapshot is its model


def test_usage_without_details_or_without_usage():
    no_split = openai_record(usage={"input_tokens": 206, "output_tokens": 1056, "total_tokens": 1262})
    assert cost_of_usage(no_split) == pytest.approx(206 * 8e-6 + 1056 * 32e-6, abs=1e-9)  # image rate
    assert cost_of_usage(openai_record(usage={})) is None  # usage is optional: book the estimate


def test_cost_of_credit_and_image_records():
    kontext = BFLBackend(None, model="flux-kontext-max").usage_record({"step": "s", "credits": 8.0, "id": "j1"})
    assert kontext["provider"] == "bfl" and cost_of_usage(kontext) == 0.08
    flux2 = BFLBackend(None, model="flux-2-pro").usage_record({"step": "s", "credits": None, "id": "j2"})
    assert cost_of_usage(flux2) == 0.045  # no credits reported: BFL's smallest edit (1 MP from one 1 MP input)
    # recraft.py / firefly.py / local.py build these records inline
    assert cost_of_usage({"step": "s", "provider": "recraft", "model": "recraftv3", "images": 1,
                          "credits": 40}) == 0.04
    assert cost_of_usage({"step": "s", "provider": "recraft", "model": "recraftv3", "images": 1,
                          "credits": None}) == 0.04
    assert cost_of_usage({"step": "s", "provider": "firefly", "model": "firefly-fill-v3", "images": 1,
                          "job_id": "j"}) == 0.04
    assert cost_of_usage({"step": "s", "images": 1, "cost_usd": 0.0}) == 0.0


def test_cache_hits_cost_nothing_and_unknowns_are_named():
    assert cost_of_usage(openai_record(), cached=True) == 0.0
    assert cost_of_usage({**openai_record(), "cache_hit": True}) == 0.0
    assert cost_of_usage({**openai_record(), "cached": True}) == 0.0
    with pytest.raises(PricingError, match="no provider"):
        cost_of_usage({"step": "s", "images": 1})
    with pytest.raises(PricingError, match=r"no price for openai model 'dall-e-2'"):
        cost_of_usage({**openai_record(), "model": "dall-e-2"})


def test_user_prices_reprice_actuals(tmp_path):
    path = tmp_path / "contract.yaml"
    path.write_text("version: 1\nbatch_discount: 0.6\nproviders:\n  openai:\n    models:\n"
                    "      gpt-image-1.5: {image_out: 20}\n")
    prices = load_prices(str(path))
    assert cost_of_usage(openai_record(), prices) == pytest.approx(194 * 8e-6 + 12 * 5e-6 + 1056 * 20e-6, abs=1e-9)
    assert cost_of_usage(openai_record(batch=True), str(path)) == pytest.approx(
        cost_of_usage(openai_record(), prices) * 0.4, abs=1e-9)


def test_estimate_reconciles_with_the_local_edit_services_usage(service):
    """The same request priced up front and after the fact, through the OpenAI backend."""
    from airflow_image_catalog.backends import openai_transport
    from airflow_image_catalog.backends.base import ImageContext
    from tests.fixtures.service import product_png

    config = SimpleNamespace(extras={"max_attempts": 1}, api_key="sk-test", base_url=service.openai_base_url)
    backend = OpenAIImagesBackend(openai_transport(config), model="gpt-image-1.5", size="1024x1024", quality="low")
    recipe = parse_recipe({"name": "t", "output": {"format": "png"}, "steps": [
        {"id": "a", "prompt": PROMPT_40, "local": {"op": "look", "params": {"name": "warm"}}}]})
    result = backend.edit(product_png(1024, 1024), recipe, ImageContext("p", "file:///tmp", "file:///tmp"))
    (record,) = result.usage
    estimate = estimate_recipe(recipe, "openai", "gpt-image-1.5", source_size=(1024, 1024),
                               settings={"size": "1024x1024", "quality": "low"})
    assert record["input_image_tokens"] == estimate.tokens.image_in == 194
    assert record["output_tokens"] == estimate.tokens.image_out == 272
    assert estimate.low_usd <= cost_of_usage(record) <= estimate.high_usd


def test_cached_input_tokens_use_the_cached_prices():
    price = load_prices().model("openai", "gpt-image-2")
    cached = Tokens(image_in_cached=1_000_000, text_in_cached=1_000_000)
    assert token_usd(price, cached) == pytest.approx(2.00 + 1.25)
    assert token_usd(price, Tokens(image_in=1_000_000, text_in=1_000_000, image_out=1_000_000)) == 8 + 5 + 30


def test_gpt_image_2_estimate_reconciles_with_the_local_edit_services_usage(service):
    """The service bills gpt-image-2 from its own table (tooling/service/usage.py): the estimate agrees."""
    from airflow_image_catalog.backends import openai_transport
    from airflow_image_catalog.backends.base import ImageContext
    from tests.fixtures.service import product_png

    config = SimpleNamespace(extras={"max_attempts": 1}, api_key="sk-test", base_url=service.openai_base_url)
    backend = OpenAIImagesBackend(openai_transport(config), model="gpt-image-2", size="1024x1536", quality="medium")
    recipe = parse_recipe({"name": "t", "output": {"format": "png"}, "steps": [
        {"id": "a", "prompt": PROMPT_40, "local": {"op": "look", "params": {"name": "warm"}}}]})
    (record,) = backend.edit(product_png(1024, 1024), recipe, ImageContext("p", "file:///tmp", "file:///tmp")).usage
    estimate = estimate_recipe(recipe, "openai", "gpt-image-2", source_size=(1024, 1024),
                               settings={"size": "1024x1536", "quality": "medium"})
    assert record["output_tokens"] == estimate.tokens.image_out == 1372
    assert record["input_image_tokens"] == estimate.tokens.image_in == 1024
    assert estimate.low_usd <= cost_of_usage(record) <= estimate.high_usd
