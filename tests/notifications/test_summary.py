"""The alert message: kinds, counts, cost, pass rate, links, and no secrets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_image_catalog.notifications.catalog import alert_kind, read_run_state
from airflow_image_catalog.notifications.summary import alert_summary, scrub
from airflow_image_catalog.operators.quality_gate import QualityGateFailed

RUN_ID = "scheduled__2026-11-26T00:00:00+00:00"
RUN_KEY = "scheduled__2026-11-26T00_00_00_00_00"


def _context(tmp_path: Path, task_id: str = "edit", exception: BaseException | None = None, **ti: object) -> dict:
    fields = {"task_id": task_id, "map_index": -1, "try_number": 1, "log_url": "http://airflow/log?x=1", **ti}
    return {"dag": SimpleNamespace(dag_id="catalog_refresh"), "run_id": RUN_ID,
            "ti": SimpleNamespace(**fields), "exception": exception,
            "params": {"workspace": str(tmp_path / "work"), "min_pass_rate": 0.8}}


REPORT = {"counts": {"found": 18, "changed": 17, "edited": 12, "failed": 5, "quarantined": 2, "published": 10, "cache_hits": 0},
          "cost": {"actual_usd": 1.234, "decision": {"estimate_usd": 1.5, "action": "go", "policy": "fail"}},
          "quality": {"pass_rate": 0.8333}}


@pytest.mark.parametrize("secret, leaked", [
    ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
    ("openai said 401 for key sk-proj-AbCdEf0123456789", "AbCdEf0123456789"),
    ("headers={'x-key': 'bfl-9f8e7d6c5b4a'}", "bfl-9f8e7d6c5b4a"),
    ("GET https://store/x.png?X-Amz-Signature=deadbeef01&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP", "deadbeef01"),
    ("GET https://store/x.png?X-Amz-Signature=deadbeef01&X-Amz-Credential=AKIAABCDEFGHIJKLMNOP",
     "AKIAABCDEFGHIJKLMNOP"),
    ("connect to https://bob:hunter2@db.internal/x failed", "hunter2"),
    ("api_key=s3cr3t-value, retry", "s3cr3t-value"),
    ('{"password": "pa55word"}', "pa55word"),
    ("post https://hooks.slack.com/services/T000/B000/XXXXSECRET", "XXXXSECRET"),
])
def test_scrub_removes_secrets(secret: str, leaked: str):
    assert leaked not in scrub(secret)
    assert "***" in scrub(secret)


def test_scrub_keeps_ordinary_text():
    text = "chunk 3: pass rate 40% is below 80% (3 quarantined); see file:///w/runs/r/quality/chunk-00003.json"
    assert scrub(text) == text


def test_task_failure_summary_has_identity_counts_cost_links_and_no_secret(tmp_path: Path):
    error = RuntimeError("edit service 500 for https://api.example/v1/edits (Authorization: Bearer tok_ABCDEF123)")
    summary = alert_summary("task_failure", _context(tmp_path, "edit", error, map_index=2, try_number=3), REPORT)

    fields = summary["fields"]
    assert (fields["dag_id"], fields["run_id"], fields["task_id"], fields["map_index"], fields["try_number"]) == \
        ("catalog_refresh", RUN_ID, "edit", 2, 3)
    assert fields["counts"] == {"found": 18, "changed": 17, "edited": 12, "failed": 5, "quarantined": 2, "published": 10}
    assert fields["cost"]["estimate_usd"] == 1.5 and fields["cost"]["actual_usd"] == 1.234
    assert fields["pass_rate"] == 0.8333
    assert summary["links"]["report"] == f"file://{tmp_path}/work/runs/{RUN_KEY}/report.html"
    assert summary["links"]["task_log"] == "http://airflow/log?x=1"
    assert "RuntimeError: edit service 500" in fields["what_failed"]
    assert "edit[2]" in summary["title"]
    text = json.dumps(summary)
    assert "tok_ABCDEF123" not in text
    for fragment in ("found 18 / changed 17 / edited 12 / failed 5 / quarantined 2 / published 10", "estimate $1.50",
                     "actual $1.23", "pass rate 83% (minimum 80%)", "report: file://"):
        assert fragment in summary["text"], fragment


def test_budget_breach_reads_the_decision(tmp_path: Path):
    decision = {"action": "fail", "policy": "fail", "estimate_usd": 41.0, "available_usd": 25.0,
                "message": "estimate $41.00 is over the run budget $25.00"}
    context = _context(tmp_path, "cost_check", RuntimeError("cost check: estimate $41.00 is over the run budget"))
    summary = alert_summary(alert_kind(context), context, None, decision)
    assert summary["kind"] == "budget_breach"
    assert "cost check (fail, policy fail): estimate $41.00 is over the run budget $25.00" in summary["text"]
    assert "estimate $41.00, actual -, available $25.00" in summary["text"]
    assert summary["fields"]["cost"]["action"] == "fail"


def test_gate_kinds_and_pass_rate_from_gate_manifests(tmp_path: Path):
    low = _context(tmp_path, "quality_gate", QualityGateFailed("chunk 0: pass rate 33% is below 80%"), map_index=0)
    assert alert_kind(low) == "low_pass_rate"
    assert alert_kind(_context(tmp_path, "quality_gate", ValueError("GX blew up"))) == "gate_failure"
    assert alert_kind(_context(tmp_path, "publish", ValueError("x"))) == "task_failure"

    quality = tmp_path / "work" / "runs" / RUN_KEY / "quality"
    (quality / "data_docs" / "chunk-00000").mkdir(parents=True)
    (quality / "data_docs" / "chunk-00000" / "chunk-x.json").write_text("{}")  # not a gate manifest
    (quality / "chunk-00000.json").write_text(json.dumps(
        {"chunk_index": 0, "counts": {"pass": 1, "quarantined": 2, "not_gated": 1}, "pass_rate": 0.3333}))
    state = read_run_state(str(tmp_path / "work"), RUN_ID)
    assert state["report"] is None and state["decision"] is None and len(state["gates"]) == 1

    summary = alert_summary("low_pass_rate", low, state["report"], state["decision"], gates=state["gates"])
    assert summary["fields"]["pass_rate"] == 0.3333
    assert summary["fields"]["counts"] == {"found": 4, "changed": 4, "edited": 3, "failed": 1, "quarantined": 2, "published": 0}
    assert "lowest chunk pass rate 33% (chunk 0)" in summary["fields"]["what_failed"]
    assert "pass rate 33% (minimum 80%)" in summary["text"]


def test_deadline_context_is_a_plain_dict(tmp_path: Path):
    context = {"dag_run": {"dag_id": "catalog_refresh", "dag_run_id": RUN_ID,
                           "conf": {"workspace": str(tmp_path / "w")}},
               "deadline": {"id": "d1", "deadline_time": "2026-11-26T06:00:00+00:00"}}
    summary = alert_summary("deadline_missed", context)
    assert summary["fields"]["dag_id"] == "catalog_refresh" and summary["fields"]["run_id"] == RUN_ID
    assert "not done by its deadline (2026-11-26T06:00:00+00:00)" in summary["text"]
    assert summary["links"]["report"].endswith(f"/w/runs/{RUN_KEY}/report.html")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown alert kind"):
        alert_summary("oops", {})
