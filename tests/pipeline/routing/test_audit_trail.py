"""The router learns from the audit store: routed records written by publish, read back with records of
runs from before the routing columns existed."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from airflow_image_catalog.pipeline.publishing.audit.records import COLUMNS
from airflow_image_catalog.pipeline.publishing.audit.store import open_audit, query, write_audit
from airflow_image_catalog.pipeline.routing.estimates import audit_outcomes

ROUTING_COLUMNS = ("routed_candidate", "routing_reason", "routing_bucket", "escalated", "routing_json")


def _record(image_id: str, event: str, attempts: list[tuple[str, str]] | None) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(schema_version=1, event=event, image_id=image_id, run_key="run-new", recipe_name="marketplace_white_square",
               recorded_at="2026-12-02T10:00:00+00:00")
    if attempts:
        row.update(routed_candidate=attempts[0][0], routing_bucket="white/text/normal/medium",
                   escalated=len(attempts) > 1, routing_json=json.dumps({
                       "candidate": attempts[0][0], "bucket": "white/text/normal/medium",
                       "attempts": [{"candidate": c, "verdict": v, "status": "edited"} for c, v in attempts]}))
    return row


def _old_file(workspace: Path) -> None:
    """A run's partition as the store wrote it before the routing columns (the same writer, fewer columns)."""
    folder = workspace / "audit" / "day=2026-11-01" / "run=run-old"
    folder.mkdir(parents=True)
    kept = [name for name in COLUMNS if name not in ROUTING_COLUMNS]
    con = duckdb.connect()
    con.execute("CREATE TABLE old AS SELECT " + ", ".join(
        f"CAST(NULL AS {COLUMNS[name]}) AS \"{name}\"" for name in kept if name not in ("event", "image_id", "run_key",
                                                                                         "recipe_name"))
                + ", 'published' AS event, 'old-image' AS image_id, 'run-old' AS run_key, "
                  "'marketplace_white_square' AS recipe_name")
    con.execute(f"COPY old TO '{folder / 'part-00000.parquet'}' (FORMAT parquet)")


def test_routed_records_are_learnt_from_and_older_files_still_read(tmp_path: Path):
    workspace = tmp_path / "work"
    _old_file(workspace)
    write_audit([_record("a", "published", [("lite", "pass")]),
                 _record("b", "published", [("lite", "quarantined"), ("pro", "pass")]),
                 _record("c", "quarantined", [("lite", "quarantined"), ("pro", "quarantined")])],
                str(workspace), run_key="run-new", day="2026-12-02")

    con = open_audit(str(workspace))
    rows = {r["image_id"]: r for r in query(con, "SELECT image_id, routed_candidate, escalated FROM audit")}
    assert rows["old-image"]["routed_candidate"] is None and rows["old-image"]["escalated"] is None
    assert rows["b"]["routed_candidate"] == "lite" and rows["b"]["escalated"] is True

    outcomes = audit_outcomes(str(workspace), "marketplace_white_square")
    assert sorted((o["candidate"], o["passed"]) for o in outcomes) == [
        ("lite", False), ("lite", False), ("lite", True), ("pro", False), ("pro", True)]
    assert {o["bucket"] for o in outcomes} == {"white/text/normal/medium"}
    assert audit_outcomes(str(workspace), "another_recipe") == []
