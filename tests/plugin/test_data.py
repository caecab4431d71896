"""The plugin's data functions over a real catalog_refresh run's workspace."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from airflow_image_catalog.plugin import data
from tests.plugin.conftest import CatalogRun


def test_recent_runs_summarise_the_report(catalog_run: CatalogRun):
    (run,) = data.recent_runs(str(catalog_run.workspace))
    assert run["run_key"] == catalog_run.run_key and run["run_id"] == catalog_run.run_id
    assert (run["found"], run["edited"], run["passed"], run["quarantined"], run["published"], run["failed"]) == \
        (4, 3, 0, 3, 0, 1)
    assert run["pass_rate"] == 0 and run["estimate_usd"] == 0 and run["actual_usd"] == 0
    assert run["budgets"] == {"run": None, "day": 5.0, "month": 50.0}
    assert run["report_html"].endswith(f"/runs/{catalog_run.run_key}/report.html")
    assert run["data_docs"] and run["data_docs"][0].endswith("index.html")
    assert data.recent_runs(str(catalog_run.root / "nowhere")) == []


def test_run_detail_refuses_keys_that_are_not_run_keys(catalog_run: CatalogRun):
    detail = data.run_detail(str(catalog_run.workspace), catalog_run.run_key)
    assert detail["decision"]["action"] == "go" and detail["report"]["counts"]["quarantined"] == 3
    for bad in ("../runs", "a/b", catalog_run.run_id, "missing"):
        assert data.run_detail(str(catalog_run.workspace), bad) is None


def test_budget_usage_reads_the_ledger(tmp_path: Path):
    from airflow_image_catalog.pipeline.costing.ledger import Ledger, LedgerEntry

    def entry(n: int, day: str, usd: float) -> LedgerEntry:
        return LedgerEntry(entry_id=f"e{n}", day=day, at=f"{day}T10:00:00+00:00", run_key="r1", image_id=f"i{n}",
                           cache_key=f"k{n}", provider="openai", usd=usd, basis="usage")

    Ledger(str(tmp_path)).record([entry(1, "2026-11-02", 1.25), entry(2, "2026-11-27", 0.5),
                                  entry(3, "2026-11-27", 0.25), entry(4, "2026-10-31", 9.0)])
    usage = data.budget_usage(str(tmp_path), {"day": 1.0, "month": 10.0}, today=date(2026, 11, 27))
    assert usage["spent_day_usd"] == 0.75 and usage["spent_month_usd"] == 2.0
    assert usage["day_share"] == 0.75 and usage["month_share"] == 0.2
    assert len(usage["by_day"]) == 27 and usage["by_day"]["2026-11-02"] == 1.25
    empty = data.budget_usage(str(tmp_path / "none"), None, today=date(2026, 11, 27))
    assert empty["spent_month_usd"] == 0 and empty["day_share"] is None


def test_review_queue_lists_the_quarantined_edits(catalog_run: CatalogRun):
    queue = data.review_queue(str(catalog_run.workspace))
    assert [r["image_id"] for r in queue["pending"]] == ["ball_red", "can_soda", "jar_honey"]
    assert queue["decided"] == []
    first = queue["pending"][0]
    assert first["failed"][0]["metric"] == "product_fill" and "product_fill" in first["metrics"]
    assert first["source_uri"].endswith("ball_red.png") and first["quarantine_uri"].endswith("ball_red.jpg")


def test_audit_search_by_sku_sha256_and_run(catalog_run: CatalogRun):
    workspace = str(catalog_run.workspace)
    by_sku = data.search_audit(workspace, "can_soda")
    assert by_sku["kind"] == "sku" and [r["event"] for r in by_sku["rows"]] == ["quarantined"]
    row = by_sku["rows"][0]
    assert row["recipe_name"] == "marketplace_white_square" and row["model"] and row["run_id"] == catalog_run.run_id
    by_sha = data.search_audit(workspace, row["source_sha256"])
    assert by_sha["kind"] == "sha256" and by_sha["rows"][0]["image_id"] == "can_soda"
    assert data.search_audit(workspace, row["source_sha256"][:12])["kind"] == "sha256"
    by_run = data.search_audit(workspace, catalog_run.run_id)
    assert by_run["kind"] == "run" and {r["image_id"] for r in by_run["rows"]} == {"ball_red", "can_soda", "jar_honey"}
    assert data.search_audit(workspace, catalog_run.run_key)["total"] == 3
    assert data.search_audit(workspace, "no-such-thing")["rows"] == []
    assert data.search_audit(workspace, "' OR 1=1 --")["rows"] == []  # parameters, never SQL text


def test_record_decision_publishes_and_audits(fresh_workspace: CatalogRun):
    workspace, published = str(fresh_workspace.workspace), str(fresh_workspace.published)
    run_key = fresh_workspace.run_key
    approved = data.record_decision(workspace, published, run_key=run_key, image_id="ball_red", approve=True,
                                    reviewer="alice", note="fill is fine for this shop")
    assert approved["review"]["decision"] == "approved" and approved["published"].endswith("ball_red.jpg")
    assert (fresh_workspace.published / "ball_red.jpg").exists()
    rejected = data.record_decision(workspace, published, run_key=run_key, image_id="can_soda", approve=False,
                                    reviewer="bob")
    assert rejected["review"]["decision"] == "rejected" and rejected["published"] is None
    record = json.loads(next(fresh_workspace.workspace.glob("quarantine/*/ball_red.json")).read_text())
    assert record["review"]["by"] == "alice" and record["review"]["note"] == "fill is fine for this shop"
    manifest = json.loads((fresh_workspace.workspace / "state" / "published_manifest.json").read_text())
    assert set(manifest["images"]) == {"ball_red"}

    queue = data.review_queue(workspace)
    assert [r["image_id"] for r in queue["pending"]] == ["jar_honey"]
    assert [r["image_id"] for r in queue["decided"]] == ["can_soda", "ball_red"] or \
        {r["image_id"] for r in queue["decided"]} == {"can_soda", "ball_red"}
    by_path = data.search_audit(workspace, approved["published"])
    assert by_path["kind"] == "path"
    assert {(r["event"], r["reviewer"]) for r in by_path["rows"]} == {("approved", "alice")}
    trail = data.search_audit(workspace, "ball_red")
    assert {r["event"] for r in trail["rows"]} == {"quarantined", "approved"}
    assert data.search_audit(workspace, "can_soda")["rows"][0]["recorded_by"].startswith(data.UI_DAG_ID)

    with pytest.raises(LookupError):  # decided once: never twice
        data.record_decision(workspace, published, run_key=run_key, image_id="ball_red", approve=False,
                             reviewer="mallory")
    with pytest.raises(LookupError):
        data.record_decision(workspace, published, run_key="other", image_id="jar_honey", approve=True,
                             reviewer="mallory")


def test_a_failed_run_shows_its_state_and_why(fresh_workspace: CatalogRun):
    """The catalog page and the run page show a failed run's state, the reason and the failed chunk
    (the report publish writes for failed runs too)."""
    from airflow_image_catalog.plugin.files import StorageRoots
    from airflow_image_catalog.plugin.pages import Links, catalog_page, run_page

    report_path = fresh_workspace.workspace / "runs" / fresh_workspace.run_key / "report.json"
    report = json.loads(report_path.read_text())
    reason = "chunk 1: 4 of 4 images failed finally, more than the allowed 50%"
    report["outcome"] = {"status": "failed", "policy": "partial", "held": 0, "reasons": [f"chunk 1 edit failed: {reason}"],
                         "chunks": [{"chunk_index": 0, "images": 4, "status": "ok", "reason": None},
                                    {"chunk_index": 1, "images": 4, "status": "edit_failed", "reason": reason}]}
    report_path.write_text(json.dumps(report))
    links = Links("/image-catalog", StorageRoots(str(fresh_workspace.workspace), str(fresh_workspace.published)))

    (run,) = data.recent_runs(str(fresh_workspace.workspace))
    assert run["status"] == "failed" and run["reasons"] == [f"chunk 1 edit failed: {reason}"]
    page = catalog_page([run], data.budget_usage(str(fresh_workspace.workspace)), links)
    assert '<span class="bad" title="chunk 1 edit failed: chunk 1: 4 of 4 images' in page
    detail = run_page(data.run_detail(str(fresh_workspace.workspace), fresh_workspace.run_key), links)
    assert 'id="state"' in detail and "run failed" in detail and "edit_failed" in detail and reason in detail
    assert "publishing policy <b>partial</b>" in detail


def test_an_unchanged_catalog_reads_found_not_zero():
    """A second run over the same catalog found every image and changed none: the UI says so."""
    from airflow_image_catalog.plugin import pages
    from airflow_image_catalog.plugin.files import StorageRoots

    report = {"run_id": "r2", "dag_id": "catalog_refresh", "recipe": {"name": "marketplace_white_square"},
              "counts": {"found": 17, "changed": 0, "unchanged": 12, "refused_before": 5, "edited": 0, "failed": 0,
                         "quarantined": 0, "published": 0}}
    summary = data.run_summary("r2", report, None)
    assert (summary["found"], summary["changed"], summary["recipe"]) == (17, 0, "marketplace_white_square")
    links = pages.Links(prefix="/image-catalog", roots=StorageRoots(workspace="/w", published="/p"))
    html = pages.run_page({"summary": summary, "report": report, "decision": None}, links)
    assert "17 found, 0 new or changed (12 unchanged since published, 5 refused before)" in html
    catalog = pages.catalog_page([summary], {"spent_day_usd": 0, "spent_month_usd": 0}, links)
    assert '<td class="num">17</td><td class="num">0</td>' in catalog  # found, then changed

    # the astronaut's photo still waits for consent: it is found and changed, and the page says why not edited
    waiting = {**report, "counts": {**report["counts"], "found": 18, "changed": 1, "unchanged": 13,
                                    "refused_before": 4, "waiting_for_consent": 1}}
    html = pages.run_page({"summary": data.run_summary("r3", waiting, None), "report": waiting, "decision": None}, links)
    assert "18 found, 1 new or changed (13 unchanged since published, 4 refused before); 1 waits for consent" in html


def test_a_routed_run_shows_its_routing_under_its_cost():
    """The catalog page's line for a routed run: images per candidate, escalations, cost per passing image and
    the saving against the fixed candidate and the strongest; an unrouted run's row has none."""
    from airflow_image_catalog.plugin import pages
    from airflow_image_catalog.plugin.files import StorageRoots

    routing = {"candidates": {"lite": {"routed": 7}, "standard": {"routed": 0}, "pro": {"routed": 3}},
               "escalations": {"attempted": 2, "passed": 1}, "expected_usd_per_pass": 0.0515,
               "actual_usd_per_pass": 0.05, "fixed_candidate": "standard", "saving_vs_fixed": 0.2857,
               "strongest": "pro", "saving_vs_strongest": -0.05}
    report = {"run_id": "r4", "counts": {"found": 10}, "routing": routing}
    summary = data.run_summary("r4", report, None)
    assert summary["routing"]["candidates"] == {"lite": 7, "standard": 0, "pro": 3}
    links = pages.Links(prefix="/image-catalog", roots=StorageRoots(workspace="/w", published="/p"))
    html = pages.catalog_page([summary, data.run_summary("r5", {"run_id": "r5"}, None)],
                              {"spent_day_usd": 0, "spent_month_usd": 0}, links)
    assert html.count('class="muted routing"') == 1
    assert "routed: lite 7, pro 3 &middot; 2 escalated (1 passed)" in html
    assert "29% below standard" in html and "5% above pro" in html
