"""Partial publishing as policy, through real catalog_refresh runs (``dag.test()``).

One chunk fails its edit (three scene photos the local engine refuses: no plain backdrop, over the
chunk's ``max_failure_rate``; no person in them, so the rights check lets them through); the other chunk's products pass. By default they are published, the
report names the failed chunk and its reason, and the run fails with the run alert; with
``publish_policy="strict"`` nothing is published.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_samples
from tests.dags.test_catalog_refresh import _run

pytestmark = pytest.mark.usefixtures("airflow_db")

PRODUCTS = ("ball_red.png", "box_tea.jpg", "can_soda.jpg", "mug_white.jpg")
SCENES = ("photo_chelsea.jpg", "photo_coffee.jpg", "photo_rocket.jpg")


@pytest.fixture
def alerts(monkeypatch):
    """A loopback webhook receiver wired as the DAG's alert channel."""
    from airflow_image_catalog.tooling.service.server import LoopbackServer
    from tests.notifications.conftest import Receiver

    receiver = Receiver()
    with LoopbackServer(receiver) as server:
        monkeypatch.setenv("AIRFLOW_CONN_CATALOG_ALERTS_WEBHOOK",
                           json.dumps({"conn_type": "http", "host": server.url + "/alerts"}))
        yield receiver


def _states(dagrun) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in dagrun.get_task_instances()}


@pytest.mark.parametrize("policy", ["partial", "strict"])
def test_a_failed_chunk_holds_back_only_itself_unless_strict(tmp_path: Path, sample_set, alerts, policy):
    source = copy_samples(sample_set, tmp_path / "source", PRODUCTS + SCENES)  # sorted: products, then scenes

    dagrun, report = _run(tmp_path, source, chunk_size=4, max_failure_rate=0.5, publish_policy=policy)

    assert dagrun.state == "failed"
    states = _states(dagrun)
    assert (states[("edit", 0)], states[("edit", 1)]) == ("success", "failed")
    assert states[("quality_gate", 0)] == "success"  # the good chunk was gated though the other failed
    assert states[("publish", -1)] == "success" and states[("outcome", -1)] == "failed"

    outcome = report["outcome"]  # written for the failed run, each chunk with its status and reason
    assert outcome["status"] == "failed" and outcome["policy"] == policy
    chunks = {c["chunk_index"]: c for c in outcome["chunks"]}
    assert chunks[0]["status"] == "ok" and chunks[0]["reason"] is None
    assert chunks[1]["status"] == "edit_failed"
    assert chunks[1]["reason"] == "chunk 1: 3 of 3 images failed finally, more than the allowed 50%"
    assert outcome["reasons"] == [f"chunk 1 edit failed: {chunks[1]['reason']}"]
    assert {f["image_id"] for f in report["failures"]} == {Path(n).stem for n in SCENES}

    published = {p.stem for p in (tmp_path / "published").glob("*")} if (tmp_path / "published").exists() else set()
    if policy == "partial":
        assert published == {Path(n).stem for n in PRODUCTS}
        assert report["counts"]["published"] == len(PRODUCTS) and report["held"] == []
    else:
        assert published == set() and report["counts"]["published"] == 0
        assert {h["image_id"] for h in report["held"]} == {Path(n).stem for n in PRODUCTS}
        assert all(h["reason"].startswith("strict publishing") for h in report["held"])
    html = Path(report["report_html"][len("file://"):]).read_text()
    assert "run failed" in html and "3 of 3 images failed finally" in html

    alerts.wait_for(2)  # the failed chunk's task alert, then the run's
    kinds = [body["kind"] for body in (alerts.json(i) for i in range(len(alerts.requests)))]
    assert kinds[:1] == ["task_failure"] and "run_failed" in kinds
    run_alert = next(alerts.json(i) for i, kind in enumerate(kinds) if kind == "run_failed")
    assert run_alert["fields"]["task_id"] == "outcome"
    assert "chunk 1 edit failed" in run_alert["fields"]["what_failed"]
    assert run_alert["fields"]["counts"]["published"] == (len(PRODUCTS) if policy == "partial" else 0)
