"""The mid-run guard: once the run's actual spend reaches its budget, no more paid calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.pipeline.costing.decision import BudgetGuard
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.pipeline.editing.inline import aedit_chunk
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.dags.test_reruns import RECIPE
from tests.fixtures.service import product_png


def _run(tmp_path: Path, service, monkeypatch, budget: float) -> tuple[ChunkRun, Ledger]:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(5):
        (source / f"p{i}.png").write_bytes(product_png(128, 128, color=(30 + 40 * i, 80, 120)))
    found = discover_images(str(source))
    conn = {"conn_type": "image_edit", "host": service.url + "/v1", "password": "sk-guard",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", "max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_EDIT", json.dumps(conn))
    ledger = Ledger(str(tmp_path / "work"))
    chunk = ChunkManifest("run_guard", 0, found.source_root, found.items)
    guard = BudgetGuard(budget, lambda: ledger.run_spend("run_guard"))
    return ChunkRun(chunk, parse_recipe(RECIPE), ImageEditHook("guard_edit").get_backend(),
                    str(tmp_path / "work" / "runs" / "run_guard"), workspace=str(tmp_path / "work"),
                    concurrency=1, ledger=ledger, guard=guard), ledger


def test_guard_stops_submitting_when_the_budget_is_spent(service, monkeypatch, tmp_path):
    run, ledger = _run(tmp_path, service, monkeypatch, budget=1.0)
    records = asyncio.run(aedit_chunk(run))  # first: learn what one edit costs, well within budget
    one = ledger.run_spend("run_guard") / len(records)
    assert one > 0 and len(service.state.performed) == 5

    service.state.reset()
    tmp2 = tmp_path / "second"
    tmp2.mkdir()
    run, ledger = _run(tmp2, service, monkeypatch, budget=one * 1.5)
    records = asyncio.run(aedit_chunk(run))
    statuses = [r.status for r in records]
    assert statuses == ["edited", "edited", "skipped_budget", "skipped_budget", "skipped_budget"]
    # one image at a time: after call 1 the spend is under budget, after call 2 it is over: nothing more
    assert len(service.state.performed) == 2
    assert ledger.run_spend("run_guard") <= one * 2 + 1e-9
    assert all("budget" in r.error for r in records[2:])


# -- the cap never overspends: a reservation per image, at the top of its estimate's band -------------
def _two_images(budget: float):
    from airflow_image_catalog.pipeline.costing.decision import Budgets, ImageCost, decide

    costs = [ImageCost(i, usd=0.100, low_usd=0.080, high_usd=0.120, priority=p) for i, p in (("a", 2), ("b", 1))]
    return decide(costs, policy="cap", budgets=Budgets(run=budget), spent_day=0.0, spent_month=0.0)


def test_cap_reserves_the_top_of_each_images_band():
    assert _two_images(0.2401).action == "go"  # both reservations fit
    assert _two_images(0.2399).kept == ["a"]  # above both estimates (0.20), below both reservations: one sent
    assert _two_images(0.1201).kept == ["a"]  # just above one reservation
    assert _two_images(0.1199).kept == [] and _two_images(0.1199).skipped_budget == ["a", "b"]  # just below it
    # just above and just below one image's estimate ($0.100): both under its reservation, nothing is sent
    assert _two_images(0.1001).kept == [] == _two_images(0.0999).kept
    decision = _two_images(0.1201)
    assert decision.per_image_high_usd == 0.12 and decision.estimate_usd == 0.1 and "reserved" in decision.message


def test_guard_admits_an_image_only_if_its_hold_fits():
    booked = []
    guard = BudgetGuard(0.25, lambda: sum(booked), refresh_s=0.0, hold_usd=0.12)
    assert guard.admit("a") and guard.admit("b")  # 0.24 held
    assert not guard.admit("c")  # 0.36 > 0.25: not sent, though nothing is spent yet
    booked.append(0.11)  # a is billed a little under its hold ...
    guard.release("a")  # ... and lands
    assert not guard.admit("c")  # 0.11 spent + 0.12 held for b + 0.12 = 0.35
    guard.release("b")
    booked.append(0.13)  # b cost more than estimated, within its hold: 0.24 spent
    assert not guard.admit("c") and guard.spent() <= 0.25


def test_a_chunk_under_a_budget_just_above_and_below_one_images_reservation(service, monkeypatch, tmp_path):
    """Real edits through the service: a budget just below or just above an image's estimate, or one cent
    under its reservation (the top of its band) sends nothing, one just above the reservation sends exactly
    one image; the spend never passes the budget."""
    from airflow_image_catalog.pipeline.costing.pricing import estimate_recipe

    estimate = estimate_recipe(parse_recipe(RECIPE), "openai", "gpt-image-1.5", source_size=(128, 128))
    above = (estimate.usd + estimate.high_usd) / 2  # just above the estimate, under the top of its band
    assert estimate.usd < above < estimate.high_usd
    for budget, sent in ((estimate.usd * 0.999, 0), (above, 0), (estimate.high_usd - 0.01, 0),
                         (estimate.high_usd * 1.001, 1)):
        workdir = tmp_path / f"b{budget:.6f}"
        workdir.mkdir()
        service.state.reset()
        run, ledger = _run(workdir, service, monkeypatch, budget=budget)
        run.guard.hold_usd = estimate.high_usd
        records = asyncio.run(aedit_chunk(run))
        assert [r.status for r in records].count("edited") == sent == len(service.state.performed)
        assert ledger.run_spend("run_guard") <= budget
        assert all("would be exceeded" in r.error for r in records if r.status == "skipped_budget")
