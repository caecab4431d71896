"""The cost check inside real catalog_refresh runs: each breach policy, the ledger, the report.

The edits go through the ``openai`` backend to the local edit service, which counts the
edits it performed; the ledger must book exactly those.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.dags.test_catalog_refresh import _dag
from tests.dags.test_reruns import RECIPE, _records, _statuses
from tests.fixtures.service import product_png

pytestmark = pytest.mark.usefixtures("airflow_db")

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 2}


def _conf(tmp_path: Path, monkeypatch, service, **params) -> dict:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(4):
        (source / f"p{i}.png").write_bytes(product_png(256, 256, color=(40 + 50 * i, 90, 160)))
    recipe = tmp_path / "warm_once.yaml"
    recipe.write_text(json.dumps(RECIPE))
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("name: lenient\nexpectations:\n  - {metric: width, min: 16, why: test}\n")
    conn = {"conn_type": "image_edit", "host": service.url + "/v1", "password": "sk-cost-key",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", "quality": "high", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_COST_EDIT", json.dumps(conn))
    return {"source": str(source), "workspace": str(tmp_path / "work"), "published": str(tmp_path / "published"),
            "recipe": str(recipe), "backend_conn_id": "cost_edit", "chunk_size": 2, "quality_profile": str(lenient),
            "min_pass_rate": 0.0, **params}


def _decision(tmp_path: Path) -> dict:
    return json.loads(next((tmp_path / "work" / "runs").glob("*/cost/decision.json")).read_text())


def _states(dagrun) -> dict[str, str]:
    states: dict[str, str] = {}
    for ti in dagrun.get_task_instances():
        states.setdefault(ti.task_id, ti.state)
    return states


def test_within_budget_goes_books_every_paid_call_and_reconciles(service, monkeypatch, tmp_path):
    dagrun = _dag().test(run_conf=_conf(tmp_path, monkeypatch, service, budget_run_usd=5.0))
    assert dagrun.state == "success"
    decision = _decision(tmp_path)
    assert decision["action"] == "go" and 0 < decision["estimate_usd"] < 5.0
    assert decision["variants"]["openai:gpt-image-2"]["usd"] > 0  # the same run priced on gpt-image-2
    entries = Ledger(str(tmp_path / "work")).entries(run_key=safe_run_key(dagrun.run_id))
    assert len(entries) == len(service.state.performed) == 4  # one ledger row per paid call
    report = json.loads(next((tmp_path / "work" / "runs").glob("*/report.json")).read_text())
    cost = report["cost"]
    assert cost["actual_usd"] == pytest.approx(sum(e.usd for e in entries)) and cost["actual_usd"] > 0
    assert cost["by_model"]["openai/gpt-image-1.5"]["calls"] == 4
    assert cost["reconciliation"]["estimate_usd"] == pytest.approx(decision["estimate_usd"])
    assert cost["reconciliation"]["error_pct"] is not None
    assert cost["cost_per_published_image_usd"] == pytest.approx(cost["actual_usd"] / 4)
    assert "Cost" in Path(report["report_html"][len("file://"):]).read_text()


def test_fail_policy_fails_before_any_paid_call_and_alerts(service, monkeypatch, tmp_path):
    from airflow_image_catalog.tooling.service.server import LoopbackServer
    from tests.notifications.conftest import Receiver

    receiver = Receiver()
    with LoopbackServer(receiver) as server:
        monkeypatch.setenv("AIRFLOW_CONN_CATALOG_ALERTS_WEBHOOK",
                           json.dumps({"conn_type": "http", "host": server.url + "/alerts"}))
        dagrun = _dag().test(run_conf=_conf(tmp_path, monkeypatch, service, budget_run_usd=0.001))
        receiver.wait_for(1)
    assert dagrun.state == "failed"
    states = _states(dagrun)
    assert states["cost_check"] == "failed" and states["edit"] == "upstream_failed"
    assert _decision(tmp_path)["action"] == "fail" and len(service.state.performed) == 0
    alert = receiver.json(0)  # the budget breach reached the (loopback) alert webhook
    assert alert["kind"] == "budget_breach" and "exceeds the run budget" in alert["text"]
    assert "sk-cost-key" not in json.dumps(alert)


def test_skip_policy_skips_the_run(service, monkeypatch, tmp_path):
    dagrun = _dag().test(run_conf=_conf(tmp_path, monkeypatch, service, budget_run_usd=0.001,
                                        budget_policy="skip"))
    states = _states(dagrun)
    assert states["cost_check"] == "skipped" and states["edit"] == "skipped"
    assert _decision(tmp_path)["action"] == "skip" and len(service.state.performed) == 0


def test_downgrade_policy_lowers_settings_until_under_budget(service, monkeypatch, tmp_path):
    first = _conf(tmp_path, monkeypatch, service, budget_run_usd=1000.0)
    from airflow_image_catalog.pipeline.costing.decision import price_images
    from airflow_image_catalog.recipes import load_recipe

    items = [{"image_id": f"p{i}", "width": 256, "height": 256} for i in range(4)]
    full = sum(c.usd for c in price_images(items, load_recipe(first["recipe"]), "openai", "gpt-image-1.5",
                                           {"quality": "high"}))
    batch = full / 2  # the first rung: the Batch API at half price
    dagrun = _dag().test(run_conf={**first, "budget_run_usd": round(batch * 1.01, 6), "budget_policy": "downgrade"})
    assert dagrun.state == "success"
    decision = _decision(tmp_path)
    assert decision["action"] == "downgrade" and decision["overrides"] == {"backend": "openai_batch"}
    assert decision["estimate_usd"] == pytest.approx(batch, rel=0.01)
    assert service.state.served["POST /v1/batches"] >= 1  # the edits went the Batch route
    entries = Ledger(str(tmp_path / "work")).entries(run_key=safe_run_key(dagrun.run_id))
    assert len(entries) == 4 and all(e.batch for e in entries)


def test_cap_policy_edits_the_highest_priority_images_that_fit(service, monkeypatch, tmp_path):
    priorities = tmp_path / "priorities.json"
    priorities.write_text(json.dumps({"p3": 10, "p1": 5}))
    conf = _conf(tmp_path, monkeypatch, service, budget_policy="cap", priority_file=str(priorities))
    from airflow_image_catalog.pipeline.costing.decision import price_images
    from airflow_image_catalog.recipes import load_recipe

    (one,) = price_images([{"image_id": "p0", "width": 256, "height": 256}], load_recipe(conf["recipe"]),
                          "openai", "gpt-image-1.5", {"quality": "high"})
    dagrun = _dag().test(run_conf={**conf, "budget_run_usd": round(one.usd * 2.5, 6)})
    assert dagrun.state == "success"
    decision = _decision(tmp_path)
    assert decision["action"] == "cap" and sorted(decision["kept"]) == ["p1", "p3"]
    assert sorted(decision["skipped_budget"]) == ["p0", "p2"]
    assert _statuses(_records(tmp_path)) == {"edited": 2} and len(service.state.performed) == 2
    report = json.loads(next((tmp_path / "work" / "runs").glob("*/report.json")).read_text())
    assert report["counts"]["skipped_budget"] == 2 and report["counts"]["published"] == 2
