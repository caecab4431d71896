"""catalog_refresh with routing on: the local edit service behind an ``openai`` connection, two candidates
priced by the shipped table, a canary decision as the prior, and a drift the gate catches to escalate."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.routing.candidates import load_candidates
from airflow_image_catalog.pipeline.routing.decision import make_decision, write_decision
from airflow_image_catalog.pipeline.routing.figures import CandidateFigures
from airflow_image_catalog.recipes import load_recipe
from tests.conftest import copy_samples
from tests.dags.test_catalog_refresh import _run
from tests.dags.test_catalog_refresh_openai import FAST

pytestmark = pytest.mark.usefixtures("airflow_db")

SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg")
CANDIDATES = """version: 1
candidates:
  - name: mini
    overrides: {model: gpt-image-1-mini, quality: low}
  - name: full
    overrides: {model: gpt-image-2, quality: high}
"""


def _setup(tmp_path: Path, service, monkeypatch, sample_set) -> tuple[Path, Path, str]:
    service.state.api_key = "sk-routing-test"
    conn = {"conn_type": "image_edit", "host": service.openai_base_url, "password": "sk-routing-test",
            "extra": {"backend": "openai", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_ROUTED", json.dumps(conn))
    candidates = tmp_path / "candidates.yaml"
    candidates.write_text(CANDIDATES)
    listed = load_candidates(str(candidates))
    # the canary's prior: the cheap candidate passed 9 of 10, the strong one 10 of 10
    figures = [CandidateFigures.of("mini", images=10, passed=9, cost_usd=0.1, seconds=1, target=0.8),
               CandidateFigures.of("full", images=10, passed=10, cost_usd=4.0, seconds=1, target=0.8)]
    write_decision(str(tmp_path / "work"), make_decision(load_recipe("marketplace_white_square"), target_pass_rate=0.8,
                                                         candidates=list(listed), figures=figures,
                                                         sample={"image_ids": []}, run={}))
    return _small_source(copy_samples(sample_set, tmp_path / "full", SAMPLES), tmp_path / "source"), candidates, \
        "openai_routed"


def _small_source(full: Path, source: Path, side: int = 480) -> Path:
    """The samples at a 480 px long side: the same products, a quarter of the engine's work."""
    from PIL import Image

    source.mkdir()
    for path in sorted(full.iterdir()):
        with Image.open(path) as image:
            image.thumbnail((side, side))
            image.save(source / path.name)
    return source


def _records(tmp_path: Path, folder: str = "edits") -> dict[str, dict]:
    manifests = (tmp_path / "work" / "runs").glob(f"*/{folder}/chunk-*.json")
    return {r["image_id"]: r for m in manifests for r in json.loads(m.read_text())["items"]}


def test_a_routed_run_escalates_the_image_that_fails_the_gate(tmp_path: Path, sample_set, service, monkeypatch):
    source, candidates, conn_id = _setup(tmp_path, service, monkeypatch, sample_set)
    # the first edit the service answers drifts (the gate catches identity drift): that image escalates
    service.state.faults.add(kind="drift", path="/v1/images/edits", count=1, prompt_contains="white")

    dagrun, report = _run(tmp_path, source, backend_conn_id=conn_id, routing=True,
                          routing_candidates=str(candidates), routing_explore_share=0.0, chunk_size=3)

    assert dagrun.state == "success", report and report["outcome"]
    routing = report["routing"]
    assert routing["candidates"]["mini"]["routed"] == 3  # the cheap candidate is expected to pass the target
    assert routing["escalations"]["attempted"] == 1 and routing["escalations"]["passed"] == 1
    assert report["counts"]["published"] == 3
    first = _records(tmp_path)
    merged = _records(tmp_path, "escalation/edits")
    escalated = [i for i, r in merged.items() if r["routing"].get("escalated")]
    assert len(escalated) == 1
    chain = merged[escalated[0]]["routing"]["attempts"]
    assert [a["candidate"] for a in chain] == ["mini", "full"]
    assert [a["verdict"] for a in chain] == ["quarantined", "pass"]
    assert first[escalated[0]]["routing"]["candidate"] == "mini"
    # the ledger booked each attempt once: 3 images x 2 steps on mini + 2 steps for the escalation on full
    entries = Ledger(str(tmp_path / "work")).entries()
    assert sorted(e.model for e in entries).count("gpt-image-2") == 2
    assert len(entries) == 8 == service.state.served["POST /v1/images/edits"]
    # the audit record carries the chain and its costs; its cost is both attempts'
    con = duckdb.connect()
    rows = con.execute(f"SELECT image_id, routed_candidate, escalated, routing_json, cost_usd, model FROM "
                       f"read_parquet('{tmp_path}/work/audit/*/*/*.parquet')").fetchall()
    by_id = {r[0]: r for r in rows}
    image_id, candidate, was_escalated, chain_json, cost, model = by_id[escalated[0]]
    assert candidate == "mini" and was_escalated and model == "gpt-image-2"
    links = json.loads(chain_json)["attempts"]
    assert cost == pytest.approx(sum(link["cost_usd"] for link in links)) and all(link["cost_usd"] > 0 for link in links)
    # the first attempt left the review queue: its stronger attempt passed
    quarantine = json.loads(next((tmp_path / "work" / "quarantine").rglob(f"{escalated[0]}.json")).read_text())
    assert quarantine["superseded_by"]["candidate"] == "full"
    from airflow_image_catalog.pipeline.quality.review import pending_reviews
    from airflow_image_catalog.plugin.data import review_queue

    assert pending_reviews(str(tmp_path / "work")) == [] and review_queue(str(tmp_path / "work"))["pending"] == []
    html = Path(report["report_html"][len("file://"):]).read_text()
    assert "<h3>Routing</h3>" in html and "escalations: 1 re-edited" in html

    # a rerun of the edit and of the escalation pays nothing again: every attempt is kept from its state
    from airflow_image_catalog.hooks.image_edit import ImageEditHook
    from airflow_image_catalog.pipeline.editing.routed import edit_routed_chunk
    from airflow_image_catalog.pipeline.routing.escalation import escalate_run

    served = service.state.served["POST /v1/images/edits"]
    work = str(tmp_path / "work")
    chunks = sorted(str(p) for p in (tmp_path / "work" / "runs").glob("*/chunks/chunk-*.json"))
    get_backend = ImageEditHook(image_edit_conn_id=conn_id).get_backend
    again = edit_routed_chunk(chunks[0], "marketplace_white_square", work, get_backend)
    assert {r.image_id: r.output_sha256 for r in again.items} == {i: r["output_sha256"] for i, r in first.items()}
    escalate_run(chunks, work, get_backend)
    assert service.state.served["POST /v1/images/edits"] == served
    assert len(Ledger(work).entries()) == 8
    assert _records(tmp_path, "escalation/edits")[escalated[0]]["routing"]["attempts"] == chain


def _prices(source: Path, model: str, quality: str) -> list[float]:
    """What the plan prices each source at on one candidate (the same function the cost check calls)."""
    from PIL import Image

    from airflow_image_catalog.pipeline.costing.decision import price_images

    items = [{"image_id": p.stem, "width": Image.open(p).width, "height": Image.open(p).height}
             for p in sorted(source.iterdir())]
    return [c.usd for c in price_images(items, load_recipe("marketplace_white_square"), "openai", model,
                                        {"quality": quality})]


def test_escalation_never_overspends_the_run_budget(tmp_path: Path, sample_set, service, monkeypatch):
    source, candidates, conn_id = _setup(tmp_path, service, monkeypatch, sample_set)
    service.state.faults.add(kind="drift", path="/v1/images/edits", count=3, prompt_contains="studio background")
    # room for the first pass and one escalation at the top of its band, not two
    budget = round(sum(_prices(source, "gpt-image-1-mini", "low")) + 1.5 * min(_prices(source, "gpt-image-2", "high")), 4)

    dagrun, report = _run(tmp_path, source, backend_conn_id=conn_id, routing=True, routing_candidates=str(candidates),
                          routing_explore_share=0.0, chunk_size=3, budget_run_usd=budget)

    escalations = report["routing"]["escalations"]
    assert escalations["attempted"] == 1 and escalations["not_sent"] == 2, escalations
    spent = Ledger(str(tmp_path / "work")).run_spend(Path(report["report_json"]).parent.name)
    assert spent <= budget
    assert report["cost"]["actual_usd"] <= budget
    merged = _records(tmp_path, "escalation/edits")
    refused = [r for r in merged.values() if r["routing"]["attempts"][-1]["status"] == "skipped_budget"]
    assert len(refused) == 2 and all(r["routing"]["attempts"][0]["verdict"] == "quarantined" for r in refused)
    assert all("budget" in r["routing"]["attempts"][-1]["error"] for r in refused)
    assert report["counts"]["quarantined"] == 2 + (escalations["quarantined"])
    # the two the budget refused are still in the review queue, as their first attempt
    from airflow_image_catalog.pipeline.quality.review import pending_reviews

    assert {r["image_id"] for r in pending_reviews(str(tmp_path / "work"))} >= {r["image_id"] for r in refused}
    assert dagrun.state == "failed"  # the gate's pass rate stays below min_pass_rate: the run says so
