"""The consent queue: images whose rights need a person, and that person's answer.

Where the wait lives (so no run is blocked for days): the rights check lets a run go on with its
``go`` images and writes each ``needs_consent`` image to ``<workspace>/consent/<image_id>.json``
(what was found and why). The ``catalog_consent`` DAG asks a reviewer through Airflow's
human-in-the-loop "Required actions" page. An approval is recorded against the image's bytes
(sha256): the next ``catalog_refresh`` run finds it and edits the image (``go``, with the consent
in its audit record). A rejection is final: the image is remembered as refused for those bytes
and recipe (the published manifest's ``failed_final``, the rule discovery already applies), so no
later run asks or pays again; a new version of the image is judged afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.storage import (
    StorageError,
    list_objects,
    read_json,
    read_json_if_exists,
    write_json,
)
from airflow_image_catalog.workspace.layout import WorkspaceLayout

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def consent_records(workspace: str) -> list[dict[str, Any]]:
    """Every consent record (with its URI under ``record_uri``), oldest request first."""
    try:
        objects = list_objects(WorkspaceLayout(workspace).consent)
    except StorageError:
        return []
    records = []
    for obj in objects:
        if obj.uri.endswith(".json"):
            try:
                records.append({**read_json(obj.uri), "record_uri": obj.uri})
            except (StorageError, ValueError):
                continue
    return sorted(records, key=lambda r: (r.get("requested_at") or "", r.get("image_id") or ""))


def pending_consents(workspace: str) -> list[dict[str, Any]]:
    return [r for r in consent_records(workspace) if r.get("status") == PENDING]


def consent_for(workspace: str, image_id: str, source_sha256: str) -> dict[str, Any] | None:
    """The image's consent record when it is about these bytes (a changed image is asked again)."""
    record = read_json_if_exists(WorkspaceLayout(workspace).consent_record(image_id))
    return record if record and record.get("source_sha256") == source_sha256 else None


def request_consent(workspace: str, item: dict[str, Any], *, run_key: str, recipe_fingerprint: str | None) -> str:
    """Put an image in the queue (once per bytes: a pending request is left as it is); its record's URI."""
    uri = WorkspaceLayout(workspace).consent_record(item["image_id"])
    existing = read_json_if_exists(uri)
    if existing and existing.get("source_sha256") == item["source_sha256"] and existing.get("status") == PENDING:
        return uri
    write_json(uri, {
        "image_id": item["image_id"], "source_uri": item["source_uri"], "source_sha256": item["source_sha256"],
        "status": PENDING, "requested_at": _now(), "requested_by_run": run_key,
        "recipe_fingerprint": recipe_fingerprint, "reasons": item["reasons"], "rights": item.get("rights") or {},
        "people": item.get("people"), "policy": item.get("policy"),
    })
    return uri


def apply_consent(pending: list[dict[str, Any]], *, approve_ids: set[str] | None, reviewer: str, note: str,
                  workspace: str, run: dict[str, Any]) -> dict[str, Any]:
    """Record the reviewer's answer on each record; rejected ones are remembered as refused for their bytes.

    :param approve_ids: the ids approved (None: all of ``pending``); the rest are rejected.
    """
    from airflow_image_catalog.pipeline.publishing.publish import record_published

    unknown = (approve_ids or set()) - {r["image_id"] for r in pending}
    if unknown:
        raise ValueError(f"approve_ids not waiting for consent: {sorted(unknown)}")
    decided_at, decided, refusals = _now(), [], []
    for record in pending:
        approved = approve_ids is None or record["image_id"] in approve_ids
        consent = {"decision": APPROVED if approved else REJECTED, "by": reviewer, "at": decided_at, "note": note,
                   "run_id": run.get("run_id")}
        stored = {k: v for k, v in record.items() if k != "record_uri"}
        stored.update(status=consent["decision"], consent=consent)
        write_json(record["record_uri"], stored)
        # the rights decision the answer makes (the audit record's rights_decision)
        decided.append({**stored, "decision": "go" if approved else "refused"})
        if not approved:
            refusals.append({"image_id": record["image_id"], "source_uri": record["source_uri"],
                             "source_sha256": record["source_sha256"], "recipe_fingerprint":
                             record.get("recipe_fingerprint"), "status": "failed_final",
                             "error_code": "consent_denied", "error": f"consent denied by {reviewer}: {note}".rstrip(": ")})
    if refusals:
        record_published(workspace, [], run, refusals)
    return {"approved": sum(d["status"] == APPROVED for d in decided), "rejected": len(refusals),
            "reviewer": reviewer, "decided_at": decided_at, "decided": decided}


#: the rights a reviewer is shown beside the reasons (the rest is in the record and the audit)
SHOWN_RIGHTS = ("copyright_notice", "usage_terms", "model_release_status", "model_release_ids", "licence")


def why_waiting(record: dict[str, Any]) -> tuple[str, str]:
    """(why it waits, the rights found) of a consent record, as a reviewer reads them."""
    why = "; ".join(r["message"] for r in record.get("reasons", []) if r.get("decision") == "needs_consent")
    rights = record.get("rights") or {}
    return why, ", ".join(f"{k}: {v}" for k, v in rights.items() if k in SHOWN_RIGHTS) or "none"


def consent_body(pending: list[dict[str, Any]], limit: int = 50) -> str:
    """Markdown the reviewer sees: each image, what was found, why it waits, where the source is."""
    lines = [f"{len(pending)} image(s) wait for consent before any edit.", "",
             "| image | why | rights found | source |", "| --- | --- | --- | --- |"]
    for record in pending[:limit]:
        why, found = why_waiting(record)
        lines.append(f"| {record['image_id']} | {why} | {found} | {record.get('source_uri')} |")
    if len(pending) > limit:
        lines.append(f"| ... {len(pending) - limit} more | | | |")
    lines += ["", "An approval lets the next catalog_refresh run edit the image; a rejection refuses it for good "
                  "(for these bytes)."]
    return "\n".join(lines)
