"""Pricing: what an edit will cost before it runs, and what a usage record cost after.

Plain functions with no Airflow import, so the cost check, the cost ledger, the local edit
service and notebooks share one set of formulas and one price table:

* :mod:`~airflow_image_catalog.pipeline.costing.pricing.prices` - the versioned, user-overridable price table (``prices.yaml``);
* :mod:`~airflow_image_catalog.pipeline.costing.pricing.tokens` - gpt-image token estimators (documented formulas reproduced
  exactly, everything else a stated estimate with a band);
* :mod:`~airflow_image_catalog.pipeline.costing.pricing.estimate` - :func:`estimate_edit`, :func:`estimate_recipe` and
  :func:`cost_of_usage`.
"""

from __future__ import annotations

from airflow_image_catalog.pipeline.costing.pricing.estimate import (
    Estimate,
    cost_of_usage,
    estimate_edit,
    estimate_recipe,
    provider_for,
    sum_estimates,
    token_usd,
)
from airflow_image_catalog.pipeline.costing.pricing.prices import (
    ModelPrice,
    Prices,
    PricingError,
    load_prices,
    parse_prices,
)
from airflow_image_catalog.pipeline.costing.pricing.tokens import (
    TokenEstimate,
    Tokens,
    gpt_image_2_estimate,
    input_image_tokens,
    output_tokens,
    partial_image_tokens,
    prompt_tokens,
    request_tokens,
    tile_count,
)

__all__ = [
    "Estimate",
    "ModelPrice",
    "Prices",
    "PricingError",
    "TokenEstimate",
    "Tokens",
    "cost_of_usage",
    "estimate_edit",
    "estimate_recipe",
    "gpt_image_2_estimate",
    "input_image_tokens",
    "load_prices",
    "output_tokens",
    "parse_prices",
    "partial_image_tokens",
    "prompt_tokens",
    "provider_for",
    "request_tokens",
    "sum_estimates",
    "tile_count",
    "token_usd",
]
