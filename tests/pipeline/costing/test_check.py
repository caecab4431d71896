"""The cost check as plain functions: budgets from params or Variables, the decision file, ``cap``'s manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_image_catalog.backends import build_backend
from airflow_image_catalog.hooks.image_edit import BackendConfig
from airflow_image_catalog.pipeline.costing.check import (
    budget_amount,
    check_run_cost,
    decision_summary,
    resolve_budgets,
)
from airflow_image_catalog.pipeline.costing.decision import Budgets
from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.storage import read_json
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.dags.test_reruns import RECIPE
from tests.fixtures.service import product_png


def test_budget_amounts_from_params_and_templates():
    assert [budget_amount(v) for v in (None, "", " None ", "null", "2.5", 3)] == [None, None, None, None, 2.5, 3.0]
    with pytest.raises(ValueError, match="cannot be negative: '-1'"):
        budget_amount("-1")


def test_an_empty_budget_falls_back_to_its_variable():
    asked = []

    def variable(name):
        asked.append(name)
        return {"catalog_budget_day_usd": "7"}.get(name)

    assert resolve_budgets({"run": "1.5", "day": None, "month": ""}, variable) == Budgets(run=1.5, day=7.0)
    assert asked == ["catalog_budget_day_usd", "catalog_budget_month_usd"]  # a given budget wins


def _chunks(tmp_path: Path) -> tuple[list[str], str]:
    source = tmp_path / "source"
    source.mkdir(parents=True)
    for i in range(4):
        (source / f"p{i}.png").write_bytes(product_png(256, 256, color=(40 + 50 * i, 90, 160)))
    run_root = (tmp_path / "work" / "runs" / "r1").as_uri()
    return write_chunk_manifests(discover_images(str(source)), run_root=run_root, run_key="r1", chunk_size=2), run_root


def _check(tmp_path: Path, **kwargs):
    uris, run_root = _chunks(tmp_path)
    extras = {"model": "gpt-image-1.5", "quality": "high", "timeout": 5}
    backend = build_backend(BackendConfig("openai", "http://127.0.0.1:9/v1", "sk-never-called", extras))
    check = check_run_cost(uris, recipe=parse_recipe(RECIPE), backend=backend, backend_name="openai", extras=extras,
                           workspace=(tmp_path / "work").as_uri(), run_root=run_root, **kwargs)
    return check, uris, run_root


def test_within_budget_goes_on_with_the_same_chunks_and_writes_the_decision(tmp_path: Path):
    check, uris, run_root = _check(tmp_path, policy="fail", budgets=Budgets(run=100.0),
                                   compare_with="openai:gpt-image-2")
    assert check.decision.action == "go" and check.chunk_uris == uris
    written = read_json(f"{run_root}/cost/decision.json")
    assert written["action"] == "go" and written["images"] == 4 and written["estimate_usd"] > 0
    assert written["variants"]["openai:gpt-image-2"]["usd"] > 0
    summary = decision_summary(check.decision)
    assert summary["skipped_budget"] == 0 and "kept" not in summary and json.dumps(summary)  # small, XCom-safe


def test_cap_writes_manifests_of_the_highest_priorities_that_fit(tmp_path: Path):
    probe, probe_uris, _ = _check(tmp_path / "probe", policy="fail", budgets=Budgets())  # the same 4 images
    per_image = probe.decision.estimate_usd / 4
    ids = sorted(item["image_id"] for uri in probe_uris for item in read_json(uri)["items"])
    priorities = tmp_path / "priorities.json"
    priorities.write_text(json.dumps({ids[3]: 9, ids[1]: 5}))
    check, uris, run_root = _check(tmp_path, policy="cap", budgets=Budgets(run=per_image * 2.5),
                                   priority_file=str(priorities))
    assert check.decision.action == "cap"
    assert all("/chunks/capped/" in uri for uri in check.chunk_uris)
    kept = [item.image_id for uri in check.chunk_uris for item in ChunkManifest.from_dict(read_json(uri)).items]
    assert sorted(kept) == sorted([ids[3], ids[1]])


def test_every_model_a_downgrade_ladder_names_is_priced_and_served():
    """``downgrade`` never moves a run onto a model its provider shut down (gpt-image-1 left the ladder)
    or one the price table does not know."""
    from airflow_image_catalog.pipeline.costing.decision import ladder_for
    from airflow_image_catalog.pipeline.costing.pricing import load_prices
    from airflow_image_catalog.pipeline.costing.pricing.estimate import refuse_shut_down

    prices = load_prices()
    named = [(backend, change["model"]) for backend in ("openai", "openai_batch", "bfl")
             for _, change in ladder_for(backend) if "model" in change]
    assert ("openai", "gpt-image-1-mini") in named and ("bfl", "flux-kontext-pro") in named
    for backend, model in named:
        provider = "bfl" if backend == "bfl" else "openai"
        refuse_shut_down(provider, model)  # raises for a shut-down model
        assert prices.model(provider, model).source
