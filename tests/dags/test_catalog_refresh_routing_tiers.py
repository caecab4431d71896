"""The issue's Done-when for the router, on the local edit service's EMULATED tiers (stated prices and defect
rates; tooling/service/tiers.py): a brute-force canary (every candidate over every image) gives each fixed
candidate's cost per passing image and pass rate, then a routed catalog_refresh over the same images, in a
workspace that holds only the canary's decision and table (so nothing comes from the result cache), must cost
within 5 % of the best fixed candidate per passing image (or less) and at least 30 % less than always the
strongest, at a pass rate no lower than the target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.costing.ledger import Ledger
from tests.dags import test_catalog_canary as canary
from tests.dags.test_catalog_canary import SEEDS, TARGET, _canary, _connect, _profile, _recipe
from tests.dags.test_catalog_refresh import _run

pytestmark = pytest.mark.usefixtures("airflow_db")
small_source = canary.small_source  # the canary test's sources: the 12 products in two renders at 480 px


def test_the_router_beats_the_best_fixed_tier_and_the_strongest(tmp_path: Path, small_source: Path, service,
                                                                monkeypatch):
    conn_id = _connect(monkeypatch, service)
    recipe, profile = _recipe(tmp_path), _profile(tmp_path)
    canary_ws = tmp_path / "canary"
    canary_run, canary = _canary(tmp_path, small_source, canary_ws, recipe, conn_id, sample_size=len(SEEDS) * 12,
                                 seed="router-test", target_pass_rate=TARGET)
    assert canary_run.state == "success"
    fixed = {f["candidate"]: f for f in canary["decision"]["figures"]}
    meeting = [f for f in fixed.values() if f["pass_rate"] >= TARGET]
    best = min(f["cost_per_passing_usd"] for f in meeting)
    strongest = fixed["pro"]["cost_per_passing_usd"]

    routed_ws = tmp_path / "work"  # the canary's decision and table, none of its edits
    shutil.copytree(canary_ws / "routing", routed_ws / "routing")
    table = next(canary_ws.glob("runs/*/canary/report.json"))
    (routed_ws / table.relative_to(canary_ws)).parent.mkdir(parents=True)
    shutil.copy(table, routed_ws / table.relative_to(canary_ws))
    served = service.state.served["POST /v1/images/edits"]

    dagrun, report = _run(tmp_path, small_source, backend_conn_id=conn_id, recipe=str(recipe),
                          quality_profile=str(profile), routing=True, routing_explore_share=0.0, min_pass_rate=0.0,
                          chunk_size=12)

    assert dagrun.state == "success", report["outcome"]
    routing = report["routing"]
    per_pass = routing["actual_usd_per_pass"]
    print(f"router ${per_pass:.5f} per passing image at {routing['pass_rate']:.0%} "
          f"(escalations {routing['escalations']}); fixed: " +
          ", ".join(f"{n} ${f['cost_per_passing_usd']:.5f} at {f['pass_rate']:.0%}" for n, f in fixed.items()))
    assert routing["pass_rate"] >= TARGET
    assert per_pass <= 1.05 * best
    assert per_pass <= 0.70 * strongest
    assert routing["escalations"]["attempted"] > 0 and routing["escalations"]["not_sent"] == 0
    # what the report says was spent is what the ledger booked and the service answered
    assert report["cost"]["actual_usd"] == pytest.approx(Ledger(str(routed_ws)).spent())
    assert len(Ledger(str(routed_ws)).entries()) == service.state.served["POST /v1/images/edits"] - served
    html = Path(report["report_html"][len("file://"):]).read_text()
    assert "<h3>Routing</h3>" in html and f"fixed candidate {routing['fixed_candidate']}" in html
    plan = json.loads(next(routed_ws.glob("runs/*/routing/plan.json")).read_text())
    assert plan["decision"]["version"] == canary["decision"]["version"]
