"""What the UI pages show, as plain data read from the workspace: no Airflow, no HTML.

* :func:`recent_runs` — each run's ``runs/<run key>/report.json`` (and its cost decision);
* :func:`budget_usage` — the ledger's spend today and this month against the budgets;
* :func:`review_queue` — ``quarantine/<run key>/<image_id>.json`` records, pending and decided, and the
  images waiting for consent (``consent/<image_id>.json``, answered in the ``catalog_consent`` DAG);
* :func:`search_audit` — an image's audit trail by published path, sha256, SKU (image id) or run;
* :func:`record_decision` — a reviewer's decision where no review run waits: the same code path
  the review DAG uses (:func:`airflow_image_catalog.pipeline.quality.review.apply_review` + an audit record).

DuckDB and the ledger load inside the functions: the plugin module is imported by every Airflow process.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.quality.review import (
    APPROVE_ALL,
    REJECT_ALL,
    apply_review,
    awaits_review,
    pending_reviews,
)
from airflow_image_catalog.storage import StorageError, join_uri, list_objects, read_json
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
from airflow_image_catalog.workspace.manifest import safe_run_key

_SUMMARY_FILES = (RunLayout.REPORT, RunLayout.COST_DECISION)
_RUN_FILE = re.compile(rf"/runs/([^/]+)/({'|'.join(map(re.escape, _SUMMARY_FILES))})$")
_SHA256 = re.compile(r"[0-9a-fA-F]{8,64}")
UI_DAG_ID = "image_catalog_ui"  # who recorded a decision made on the plugin's review page


def _objects(prefix: str) -> list[Any]:
    try:
        return list_objects(prefix)
    except StorageError:  # nothing written there yet
        return []


def _read(uri: str) -> dict[str, Any] | None:
    try:
        return read_json(uri)
    except (StorageError, ValueError, OSError):
        return None


def routing_line(routing: dict[str, Any] | None) -> dict[str, Any] | None:
    """A routed run as the catalog page shows it: images per candidate, escalations, cost per passing image
    (expected, actual) and the saving against the fixed candidate and the strongest."""
    if not routing:
        return None
    escalations = routing.get("escalations") or {}
    from airflow_image_catalog.pipeline.routing.summary import ordered_candidates

    return {"candidates": {name: row["routed"] for name, row in ordered_candidates(routing)},
            "escalated": escalations.get("attempted"), "escalations_passed": escalations.get("passed"),
            "expected_usd_per_pass": routing.get("expected_usd_per_pass"),
            "actual_usd_per_pass": routing.get("actual_usd_per_pass"), "fixed_candidate": routing.get("fixed_candidate"),
            "saving_vs_fixed": routing.get("saving_vs_fixed"), "strongest": routing.get("strongest"),
            "saving_vs_strongest": routing.get("saving_vs_strongest")}


def run_summary(run_key: str, report: dict[str, Any] | None, decision: dict[str, Any] | None) -> dict[str, Any]:
    """One row of the catalog page: counts, pass rate, estimate vs actual, where the report is."""
    report = report or {}
    counts = report.get("counts") or {}
    cost = report.get("cost") or {}
    decision = decision or cost.get("decision") or {}
    quality = report.get("quality") or {}
    return {
        "run_key": run_key,
        "run_id": report.get("run_id"),
        "dag_id": report.get("dag_id"),
        "finished_at": report.get("finished_at"),
        "recipe": (report.get("recipe") or {}).get("name"),
        "backends": report.get("backends") or [],
        "found": counts.get("found"),
        "changed": counts.get("changed", counts.get("found")),  # reports before "changed" counted only those
        "unchanged": counts.get("unchanged"),
        "refused_before": counts.get("refused_before"),
        "waiting_for_consent": counts.get("waiting_for_consent"),
        "rights_refused": counts.get("rights_refused"),
        "edited": counts.get("edited"),
        "passed": quality.get("passed"),
        "quarantined": counts.get("quarantined"),
        "published": counts.get("published"),
        "failed": counts.get("failed"),
        "cache_hits": counts.get("cache_hits"),
        "pass_rate": quality.get("pass_rate"),
        "failed_expectations": quality.get("failed_expectations") or {},
        "profiles": quality.get("profiles") or [],
        "estimate_usd": decision.get("estimate_usd"),
        "actual_usd": cost.get("actual_usd"),
        "paid_calls": cost.get("paid_calls"),
        "cost_action": decision.get("action"),
        "cost_message": decision.get("message"),
        "budgets": decision.get("budgets") or {},
        "reconciliation": (cost.get("reconciliation") or {}).get("message"),
        "routing": routing_line(report.get("routing") or cost.get("routing")),
        "report_html": report.get("report_html"),
        "report_json": report.get("report_json"),
        "data_docs": quality.get("data_docs") or [],
        "has_report": bool(report),
        # the run's state and why it failed, as publish decided it (pipeline/publishing/outcome.py)
        "status": (report.get("outcome") or {}).get("status") or ("succeeded" if report else None),
        "reasons": (report.get("outcome") or {}).get("reasons") or [],
    }


def recent_runs(workspace: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs of the workspace (newest first): those with a report, and those that got as
    far as a cost decision (running, failed or skipped before publish)."""
    found: dict[str, dict[str, str]] = {}
    runs_root = WorkspaceLayout(workspace).runs
    if runs_root.startswith("file://"):  # one look per run folder, not a walk over every output
        from airflow_image_catalog.storage.local import uri_to_path

        folder = uri_to_path(runs_root)
        for run_dir in (p for p in (folder.iterdir() if folder.is_dir() else []) if p.is_dir()):
            for name in _SUMMARY_FILES:
                if (run_dir / name).is_file():
                    found.setdefault(run_dir.name, {})[name] = join_uri(runs_root, run_dir.name, *name.split("/"))
    else:  # object stores list the run prefixes (no delimiter listing in the storage layer)
        for obj in _objects(runs_root):
            match = _RUN_FILE.search(obj.uri)
            if match:
                found.setdefault(match.group(1), {})[match.group(2)] = obj.uri
    rows = []
    for run_key, files in found.items():
        report = _read(files[RunLayout.REPORT]) if RunLayout.REPORT in files else None
        decision = _read(files[RunLayout.COST_DECISION]) if RunLayout.COST_DECISION in files else None
        rows.append(run_summary(run_key, report, decision))
    rows.sort(key=lambda r: (r["finished_at"] or "", r["run_key"]), reverse=True)
    return rows[:limit]


def run_detail(workspace: str, run_key: str) -> dict[str, Any] | None:
    """A run's report (as written by publish) and its cost decision; None when the run left neither."""
    if safe_run_key(run_key) != run_key:
        return None
    run = WorkspaceLayout(workspace).run(run_key)
    report = _read(run.report_json)
    decision = _read(run.cost_decision)
    if report is None and decision is None:
        return None
    return {"summary": run_summary(run_key, report, decision), "report": report or {}, "decision": decision}


def budget_usage(workspace: str, budgets: dict[str, float | None] | None = None,
                 today: date | None = None) -> dict[str, Any]:
    """Spend today and this month (UTC, from the ledger) against the day / month budgets, plus the
    spend of every day of the month so far (the chart).

    :param budgets: ``{"day": ..., "month": ...}`` in USD (None: no limit), e.g. from the latest cost
        decision or the ``catalog_budget_*_usd`` Variables.
    """
    today = today or datetime.now(UTC).date()
    month = today.strftime("%Y-%m")
    ledger = Ledger(workspace)
    days = [date(today.year, today.month, d).isoformat() for d in range(1, today.day + 1)]
    # per day through the ledger's summaries: a listing per day, entries read only once
    by_day = {day: ledger.spent(day=day) for day in days}
    budgets = budgets or {}
    spent_day = by_day.get(today.isoformat(), 0.0)
    spent_month = round(sum(by_day.values()), 9)

    def share(spent: float, limit: float | None) -> float | None:
        return None if not limit else round(spent / limit, 4)

    return {
        "day": today.isoformat(), "month": month, "spent_day_usd": spent_day, "spent_month_usd": spent_month,
        "budget_day_usd": budgets.get("day"), "budget_month_usd": budgets.get("month"),
        "day_share": share(spent_day, budgets.get("day")), "month_share": share(spent_month, budgets.get("month")),
        "by_day": by_day,
    }


def review_queue(workspace: str, decided_limit: int = 30) -> dict[str, list[dict[str, Any]]]:
    """Quarantine records: ``pending`` (no decision yet, oldest run first) and the latest ``decided``."""
    pending, decided = [], []
    for obj in _objects(WorkspaceLayout(workspace).quarantine):
        if not obj.uri.endswith(".json"):
            continue
        record = _read(obj.uri)
        if not record or record.get("verdict") != "quarantined" or record.get("superseded_by"):
            continue  # a passing stronger attempt (routing's escalation) replaced it: nothing to decide
        record = {**record, "record_uri": obj.uri}
        (pending if awaits_review(record) else decided).append(record)
    pending.sort(key=lambda r: (r.get("run_key") or "", r["image_id"]))
    decided.sort(key=lambda r: (r["review"].get("at") or "", r["image_id"]), reverse=True)
    from airflow_image_catalog.pipeline.rights.consent import pending_consents

    return {"pending": pending, "decided": decided[:decided_limit], "consent": pending_consents(workspace)}


def search_audit(workspace: str, text: str, limit: int = 200) -> dict[str, Any]:
    """An image's audit records by published path / URI (or its file name), sha256 (or an 8+ hex
    prefix), SKU (image id) or run (run id or key); newest first. ``kind`` says what matched."""
    from airflow_image_catalog.pipeline.publishing.audit import open_audit
    from airflow_image_catalog.pipeline.publishing.audit.cli import trace
    from airflow_image_catalog.pipeline.publishing.audit.store import query

    text = text.strip()
    if not text:
        return {"query": text, "kind": None, "rows": []}
    con = open_audit(workspace)
    try:
        rows = trace(con, text)
        kind = "image"
        if not rows:
            rows = query(con, "SELECT * FROM audit WHERE run_key = $t OR run_id = $t ORDER BY recorded_at, "
                              "image_id, event", {"t": text})
            kind = "run"
    finally:
        con.close()
    if kind == "image":
        kind = ("sha256" if _SHA256.fullmatch(text) and any(text.lower() in str(r.get(c) or "")
                for r in rows for c in ("published_sha256", "output_sha256", "source_sha256"))
                else "sku" if any(r["image_id"] == text for r in rows) else "path")
    rows.sort(key=lambda r: str(r.get("recorded_at") or ""), reverse=True)
    return {"query": text, "kind": kind if rows else None, "rows": rows[:limit], "total": len(rows)}


def record_decision(workspace: str, published: str, *, run_key: str, image_id: str, approve: bool,
                    reviewer: str, note: str = "") -> dict[str, Any]:
    """Decide one quarantined image where no review run waits for it: publish it when approved,
    write the decision into its quarantine record and add an ``approved`` / ``rejected`` audit record.

    Reuses the review DAG's code (:func:`~airflow_image_catalog.pipeline.quality.review.apply_review`, the audit's
    ``review_records``), so a decision made here looks exactly like one made through the DAG.
    Raises ``LookupError`` when the image does not wait for a decision (decided already, unknown).
    """
    from airflow_image_catalog.pipeline.publishing.audit import find_records, review_records, write_audit

    record = next((r for r in pending_reviews(workspace)
                   if r.get("run_key") == run_key and r.get("image_id") == image_id), None)
    if record is None:
        raise LookupError(f"{run_key}/{image_id} does not wait for a review decision")
    result = apply_review([record], decision=APPROVE_ALL if approve else REJECT_ALL, approve_ids=set(),
                          reviewer=reviewer, note=note, published_root=published, workspace=workspace)
    review_run_id = f"ui_review__{result['decided_at']}__{run_key}__{image_id}"
    originals = find_records(workspace, [(r["run_key"], r["image_id"]) for r in result["decided"]])
    rows = review_records(result["decided"], originals,
                          run={"dag_id": UI_DAG_ID, "run_id": review_run_id, "task_id": "review_page"})
    write_audit(rows, workspace, run_key=safe_run_key(review_run_id))
    decided = result["decided"][0]
    return {"image_id": image_id, "run_key": run_key, "review": decided["review"],
            "published": result["published"][0]["published_uri"] if result["published"] else None}


def snapshot_uri(workspace: str, run_id: str, task_id: str) -> str:
    """Where a waiting review task keeps the record URIs it showed (``QuarantineReviewOperator``)."""
    return WorkspaceLayout(workspace).review_snapshot(run_id, task_id)


def shown_to(workspace: str, run_id: str, task_id: str) -> set[str]:
    """The quarantine record URIs a waiting review run asked about (empty when unknown)."""
    shown = _read(snapshot_uri(workspace, run_id, task_id))
    return set(shown) if isinstance(shown, list) else set()
