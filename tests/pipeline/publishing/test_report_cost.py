"""The report's cost section names the images the cost check left out for budget."""

from __future__ import annotations

from airflow_image_catalog.pipeline.publishing.report import cost_section


def test_images_skipped_for_budget_are_listed_by_id():
    decision = {"action": "cap", "policy": "cap", "message": "capped", "skipped_budget": ["p0", "p<2>"],
                "variants": {}}
    html = cost_section({"decision": decision, "actual_usd": 0.1, "paid_calls": 2, "cache_hits": 0,
                         "by_model": {}})
    assert "skipped for budget, not sent (2): p0, p&lt;2&gt;" in html
    assert "skipped for budget" not in cost_section({"decision": {**decision, "skipped_budget": []},
                                                     "actual_usd": 0.0, "paid_calls": 0, "cache_hits": 0})
