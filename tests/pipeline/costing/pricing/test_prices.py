"""The price table: shipped figures, validation naming file and field, user overrides, no Airflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_image_catalog.pipeline.costing.pricing import PricingError, load_prices, parse_prices
from airflow_image_catalog.pipeline.costing.pricing.prices import SHIPPED

REPO = Path(__file__).resolve().parents[4]

# DESIGN.md "Tokens and prices": text in / cached, image in / cached, image out, USD per 1M tokens
DOCUMENTED = {
    "gpt-image-2": (5.00, 1.25, 8.00, 2.00, 30.00),
    "gpt-image-1.5": (5.00, 1.25, 8.00, 2.00, 32.00),
    "gpt-image-1": (5.00, 1.25, 10.00, 2.50, 40.00),
    "gpt-image-1-mini": (2.00, 0.20, 2.50, 0.25, 8.00),
}


def shipped_document() -> dict:
    return yaml.safe_load(SHIPPED["default"].read_text())


@pytest.mark.parametrize("model", sorted(DOCUMENTED))
def test_each_models_five_prices(model):
    price = load_prices().model("openai", model)
    assert (price.text_in, price.text_in_cached, price.image_in, price.image_in_cached,
            price.image_out) == DOCUMENTED[model]
    assert price.billing == "tokens" and ("DESIGN.md" in price.source or "OpenAI API pricing page" in price.source)


def test_kontext_batch_and_local():
    prices = load_prices()
    assert prices.model("bfl", "flux-kontext-pro").image_usd == pytest.approx(0.04, abs=1e-12)
    assert prices.model("bfl", "flux-kontext-max").image_usd == pytest.approx(0.08, abs=1e-12)
    assert prices.batch_discount == 0.5
    assert prices.model("local", None).image_usd == 0 == prices.model("local", "anything").image_usd
    assert prices.version == 1 and prices.currency == "USD" and prices.as_of == "2026-12-01"


def test_every_shipped_entry_names_a_source_and_unpublished_ones_say_so():
    prices = load_prices()
    for provider in prices.providers:
        for price in prices.models[provider].values():
            assert price.source, f"{provider}/{price.model}"
    for provider, model in (("openai", "gpt-image-2"), ("firefly", "firefly-fill-v3")):
        assert prices.model(provider, model).assumption
    # the per-megapixel figures are BFL's own: no assumption, a source naming its pricing page ([flex]'s
    # further megapixel from BFL's skills repository, which lists 1st MP 5c, +MP 5c)
    for model in ("flux-2-pro", "flux-2-max", "flux-2-flex"):
        assert "docs.bfl.ai/quick_start/pricing" in prices.model("bfl", model).source
        assert prices.model("bfl", model).per_megapixel and not prices.model("bfl", model).assumption
    assert "+MP 5c" in prices.model("bfl", "flux-2-flex").source
    for model in ("flux-kontext-pro", "flux-kontext-max"):
        assert "black-forest-labs/skills" in prices.model("bfl", model).source


def test_snapshots_resolve_and_unknown_models_name_the_known_ones():
    prices = load_prices()
    assert prices.model("openai", "gpt-image-1-2025-04-23").model == "gpt-image-1"
    assert prices.model("openai", "gpt-image-1-mini-2025-10-06").model == "gpt-image-1-mini"
    assert prices.model("openai", "gpt-image-1.5-2025-12-16").model == "gpt-image-1.5"
    with pytest.raises(PricingError, match=r"no price for openai model 'gpt-image-10'.*known: gpt-image-2, "):
        prices.model("openai", "gpt-image-10")
    with pytest.raises(PricingError, match=r"no prices for provider 'stability' \(known: openai, bfl"):
        prices.model("stability", "sd3")


def test_aliases_name_a_deployment():
    doc = shipped_document()
    doc["providers"]["openai"]["models"]["gpt-image-1"]["aliases"] = ["catalog-images-eu"]
    assert parse_prices(doc).model("openai", "catalog-images-eu").model == "gpt-image-1"


def _broken(path: tuple, value) -> dict:
    doc = shipped_document()
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "message"), [
    (("providers", "openai", "models", "gpt-image-2", "image_out"), "thirty",
     r"mine\.yaml: providers\.openai\.models\.gpt-image-2\.image_out: must be a number >= 0, got 'thirty'"),
    (("providers", "openai", "models", "gpt-image-1", "text_in"), -1,
     r"providers\.openai\.models\.gpt-image-1\.text_in: must be a number >= 0"),
    (("providers", "openai", "models", "gpt-image-1", "image_in_cached"), KeyError,
     r"providers\.openai\.models\.gpt-image-1\.image_in_cached: required for tokens billing"),
    (("providers", "openai", "models", "gpt-image-1", "colour"), 1,
     r"providers\.openai\.models\.gpt-image-1\.colour: unknown field"),
    (("providers", "bfl", "credit_usd"), KeyError, r"providers\.bfl\.credit_usd: required for credits billing"),
    (("providers", "bfl", "billing"), "per_day", r"providers\.bfl\.billing: must be one of tokens, credits, image"),
    (("providers", "recraft", "models", "recraftv3", "credits"), True, r"recraftv3\.credits: must be a number"),
    (("batch_discount",), 1.5, r"mine\.yaml: batch_discount: must be below 1"),
    (("version",), 2, r"mine\.yaml: version: unsupported price table version 2"),
    (("currency",), "EUR", r"currency: only USD is supported"),
    (("as_of",), KeyError, r"as_of: required"),
    (("providers",), {}, r"providers: required"),
    (("budget",), 5, r"mine\.yaml: budget: unknown field"),
])
def test_validation_errors_name_file_and_field(path, value, message):
    with pytest.raises(PricingError, match=message):
        parse_prices(_broken(path, value), origin="file:///etc/prices/mine.yaml")


def test_user_override_file_replaces_a_price_and_keeps_the_rest(tmp_path):
    path = tmp_path / "negotiated.yaml"
    path.write_text("version: 1\nproviders:\n  openai:\n    models:\n      gpt-image-2: {image_out: 24.5}\n"
                    "  firefly:\n    models:\n      firefly-fill-v3: {per_image: 0.02, source: contract 2026-09}\n")
    prices = load_prices(str(path))
    mine = prices.model("openai", "gpt-image-2")
    assert mine.image_out == 24.5 and mine.image_in == 8.0 and mine.source == "override in negotiated.yaml"
    firefly = prices.model("firefly", "firefly-fill-v3")
    assert firefly.per_image == 0.02 and firefly.source == "contract 2026-09" and not firefly.assumption
    assert prices.model("openai", "gpt-image-1").image_out == 40.0
    assert load_prices().model("openai", "gpt-image-2").image_out == 30.0  # the shipped table is untouched
    assert load_prices(path.as_uri()).model("openai", "gpt-image-2").image_out == 24.5


def test_user_override_errors_name_the_users_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("version: 1\nproviders:\n  openai:\n    models:\n      gpt-image-2: {image_outt: 24}\n")
    with pytest.raises(PricingError, match=r"typo\.yaml: providers\.openai\.models\.gpt-image-2\.image_outt"):
        load_prices(str(path))
    path.write_text("providers: {}\n")
    with pytest.raises(PricingError, match=r"typo\.yaml: version: unsupported"):
        load_prices(str(path))
    with pytest.raises(PricingError, match="neither a shipped price table"):
        load_prices(str(tmp_path / "missing.yaml"))


def test_pricing_never_imports_airflow():
    code = (
        "import sys\n"
        "from airflow_image_catalog.pipeline.costing.pricing import estimate_recipe, cost_of_usage, load_prices\n"
        "from airflow_image_catalog.recipes import load_recipe\n"
        "estimate_recipe(load_recipe('marketplace_white_square'), 'openai', 'gpt-image-2', source_size=(1600, 1200))\n"
        "cost_of_usage({'provider': 'bfl', 'model': 'flux-kontext-pro', 'images': 1, 'credits': 4.0})\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for module in (REPO / "operators" / "airflow_image_catalog" / "pipeline" / "costing" / "pricing").glob("*.py"):  # lazy imports inside functions too
        assert not re.search(r"^\s*(from|import)\s+airflow\b", module.read_text(), re.M), module.name
