"""Human review of quarantined images: list what waits, apply a reviewer's decision.

Approved images are published (verified against the sha256 recorded at edit time);
rejected ones stay in quarantine. Either way the decision, the reviewer and the
time are written into the image's quarantine record, which the audit trail reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.pipeline.quality.reasons import reason_text
from airflow_image_catalog.storage import StorageError, list_objects, read_json, write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout

APPROVE_ALL = "Approve all"
REJECT_ALL = "Reject all"
APPROVE_LISTED = "Approve listed, reject the rest"
OPTIONS = [APPROVE_ALL, REJECT_ALL, APPROVE_LISTED]


def awaits_review(record: dict[str, Any]) -> bool:
    """A quarantine record no one has decided on, and that no stronger attempt has replaced (a routed run's
    escalation that passed marks the first attempt's record ``superseded_by``)."""
    return record.get("verdict") == "quarantined" and not record.get("review") and not record.get("superseded_by")


def pending_reviews(workspace: str) -> list[dict[str, Any]]:
    """Quarantine records (with their URI under ``record_uri``) that no one has decided on yet."""
    root = WorkspaceLayout(workspace).quarantine
    try:
        objects = list_objects(root)
    except StorageError:
        return []
    pending = []
    for obj in objects:
        if obj.uri.endswith(".json"):
            record = read_json(obj.uri)
            if awaits_review(record):
                pending.append({**record, "record_uri": obj.uri})
    return pending


def review_body(pending: list[dict[str, Any]], limit: int = 50) -> str:
    """Markdown the reviewer sees: each image, why it was quarantined, where to look at it."""
    lines = [f"{len(pending)} quarantined image(s) wait for a decision.", "",
             "| image | run | failed checks | file |", "| --- | --- | --- | --- |"]
    for record in pending[:limit]:
        reasons = "; ".join(reason_text(f) for f in record.get("failed", []))
        lines.append(f"| {record['image_id']} | {record['run_key']} | {reasons} | {record.get('quarantine_uri')} |")
    if len(pending) > limit:
        lines.append(f"| ... {len(pending) - limit} more | | | |")
    lines += ["", f"'{APPROVE_LISTED}' approves the ids given in *approve_ids* (comma separated)."]
    return "\n".join(lines)


def apply_review(
    pending: list[dict[str, Any]],
    *,
    decision: str,
    approve_ids: set[str],
    reviewer: str,
    note: str,
    published_root: str,
    workspace: str,
) -> dict[str, Any]:
    """Publish the approved images, record every decision; return counts and the published entries."""
    from airflow_image_catalog.pipeline.publishing.publish import publish_image, record_published

    if decision not in OPTIONS:
        raise ValueError(f"unknown review decision {decision!r} (expected one of {OPTIONS})")
    unknown = approve_ids - {r["image_id"] for r in pending}
    if unknown:
        raise ValueError(f"approve_ids not waiting for review: {sorted(unknown)}")
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    published, rejected, decided = [], [], []
    for record in pending:
        approved = decision == APPROVE_ALL or (decision == APPROVE_LISTED and record["image_id"] in approve_ids)
        review = {"decision": "approved" if approved else "rejected", "by": reviewer, "at": decided_at, "note": note}
        if approved:
            entry = publish_image(
                record["image_id"], record["quarantine_uri"], record["output_sha256"], published_root,
                source_uri=record["source_uri"], source_sha256=record.get("source_sha256"),
                width=record.get("width"), height=record.get("height"), review=review,
            )
            published.append(entry)
            review["published_uri"] = entry["published_uri"]
            review["published_sha256"] = entry["sha256"]
        else:
            rejected.append(record["image_id"])
        stored = {k: v for k, v in record.items() if k != "record_uri"}
        write_json(record["record_uri"], {**stored, "review": review})
        decided.append({**stored, "review": review})
    record_published(workspace, published, {"run_id": f"review:{decided_at}"})
    return {"approved": len(published), "rejected": len(rejected), "published": published,
            "rejected_ids": rejected, "reviewer": reviewer, "decided_at": decided_at, "decided": decided}
