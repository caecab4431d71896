"""The rights check of one run, before the cost check: read each image's rights, look for people where
the policy needs to know, decide, and hand on only the ``go`` images.

``refused`` images are never priced, never sent to a backend, and remembered as refused for their
bytes and recipe (the published manifest's ``failed_final``, which discovery skips); ``needs_consent``
images go to the consent queue (:mod:`.consent`) and wait there while the run goes on. Everything
the decision was based on is written to ``runs/<run>/rights/decision.json`` (publish, the report and
the lineage read it) and to the audit store (a ``refused`` / ``consent_requested`` record each).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from airflow_image_catalog.pipeline.rights import consent as queue
from airflow_image_catalog.pipeline.rights.metadata import RightsMetadata, RightsMetadataError, read_rights
from airflow_image_catalog.pipeline.rights.policy import (
    GO,
    NEEDS_CONSENT,
    REFUSED,
    RightsDecision,
    RightsPolicy,
    decide_rights,
    needs_people_check,
)
from airflow_image_catalog.storage import StorageError, read_bytes, read_json, read_json_if_exists, write_json
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, SourceItem

log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 2


def judge_image(item: SourceItem, data: bytes | None, *, policy: RightsPolicy, sidecar: Mapping[str, RightsMetadata],
                workspace: str, today: date) -> dict[str, Any]:
    """One image's rights decision with what it was based on (a JSON-ready dict)."""
    notes: list[str] = []
    try:
        embedded = read_rights(data) if data is not None else RightsMetadata()
    except RightsMetadataError as exc:  # a broken container fails at edit time, for free: say so here
        embedded, notes = RightsMetadata(), [f"metadata unreadable: {exc}"]
    rights = embedded.overridden_by(sidecar[item.image_id]) if item.image_id in sidecar else embedded
    record = queue.consent_for(workspace, item.image_id, item.source_sha256)
    entry: dict[str, Any] = {"image_id": item.image_id, "source_uri": item.source_uri,
                             "source_sha256": item.source_sha256, "rights": rights.to_dict(), "people": None,
                             "policy": policy.name, "notes": notes}
    if record and record.get("status") in (queue.APPROVED, queue.REJECTED):
        consent = record.get("consent") or {}
        approved = record["status"] == queue.APPROVED
        decision = RightsDecision()
        decision.add(GO if approved else REFUSED, "consent_granted" if approved else "consent_denied",
                     f"consent {'given' if approved else 'refused'} by {consent.get('by')} at {consent.get('at')}")
        return {**entry, "decision": decision.decision, "reasons": record.get("reasons", []) + decision.reasons,
                "people": record.get("people"), "consent": consent}
    if record and record.get("status") == queue.PENDING:  # asked before: the same finding, no second search
        return {**entry, "decision": NEEDS_CONSENT, "reasons": record.get("reasons", []), "people": record.get("people"),
                "consent": {"decision": queue.PENDING, "requested_at": record.get("requested_at")}}
    people = None
    decision = decide_rights(rights, None, policy, today=today)
    if decision.decision != REFUSED and needs_people_check(rights, policy) and data is not None:
        from airflow_image_catalog.pipeline.rights.people import detect_people

        try:
            people = detect_people(data, max_side=policy.detection_max_side, min_face=policy.detection_min_face)
        except Exception as exc:  # an undecodable image fails at edit time with its reason, free
            notes.append(f"people detection skipped: {type(exc).__name__}: {exc}")
        else:
            decision = decide_rights(rights, people, policy, today=today)
    return {**entry, "decision": decision.decision, "reasons": decision.reasons,
            "people": people.to_dict() if people else None}


@dataclass
class RightsCheck:
    """What the rights check decided, and the chunk manifests the cost check gets (``go`` images only)."""

    summary: dict[str, Any]
    chunk_uris: list[str]
    items: list[dict[str, Any]]


def check_run_rights(chunk_uris: list[str], *, workspace: str, run_root: str, policy: RightsPolicy,
                     sidecar: Mapping[str, RightsMetadata] | None = None, recipe_fingerprint: str | None = None,
                     run: Mapping[str, Any] | None = None, today: date | None = None,
                     concurrency: int = DEFAULT_CONCURRENCY) -> RightsCheck:
    """Judge every image of the run's chunks; write the decision, the queue, the refusals and the go chunks.

    A rerun of the same run reuses the decision it wrote (the same images pass, nothing is asked twice).
    """
    layout = RunLayout(run_root)
    earlier = read_json_if_exists(layout.rights_decision)
    chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in chunk_uris]
    if earlier is not None:
        items = earlier["items"]
    else:
        today = today or datetime.now(UTC).date()
        sidecar = sidecar or {}

        def judge(item: SourceItem) -> dict[str, Any]:
            try:
                data = read_bytes(item.source_uri)
            except StorageError as exc:  # discovery just read it: a vanished source fails at edit time
                log.warning("rights check: cannot read %s: %s", item.source_uri, exc)
                data = None
            return judge_image(item, data, policy=policy, sidecar=sidecar, workspace=workspace, today=today)

        every = [item for chunk in chunks for item in chunk.items]
        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            items = list(pool.map(judge, every))
    run = dict(run or {})
    run_key = layout.run_key
    for item in items:
        if item["decision"] == NEEDS_CONSENT and not item.get("consent"):
            item["consent"] = {"decision": queue.PENDING, "record_uri": queue.request_consent(
                workspace, item, run_key=run_key, recipe_fingerprint=recipe_fingerprint)}
    refused = [item for item in items if item["decision"] == REFUSED]
    if refused:
        from airflow_image_catalog.pipeline.publishing.publish import record_published

        record_published(workspace, [], {"run_id": run.get("run_id")}, [
            {"image_id": i["image_id"], "source_uri": i["source_uri"], "source_sha256": i["source_sha256"],
             "recipe_fingerprint": recipe_fingerprint, "status": "failed_final", "error_code": "rights_refused",
             "error": "; ".join(r["message"] for r in i["reasons"] if r["decision"] == REFUSED)} for i in refused])
    summary = rights_summary(items, policy)
    if earlier is None:
        write_json(layout.rights_decision, {"kind": "rights_decision", "policy": policy.to_dict(), **summary,
                                            "items": items})
    go = {item["image_id"] for item in items if item["decision"] == GO}
    uris = []
    for uri, chunk in zip(chunk_uris, chunks, strict=True):
        kept = [item for item in chunk.items if item.image_id in go]
        if kept:
            uris.append(uri if len(kept) == len(chunk.items) else
                        write_json(layout.rights_chunk(chunk.chunk_index), replace(chunk, items=kept).to_dict()))
    return RightsCheck(summary, uris, items)


def rights_summary(items: list[dict[str, Any]], policy: RightsPolicy | None = None) -> dict[str, Any]:
    """Counts by decision and by reason, and the images refused or waiting (for the report and the facet)."""
    counts = Counter(item["decision"] for item in items)
    reasons = Counter(r["code"] for item in items for r in item["reasons"] if r["decision"] == item["decision"])
    return {
        "images": len(items),
        "counts": {decision: counts.get(decision, 0) for decision in (GO, NEEDS_CONSENT, REFUSED)},
        "reasons": dict(sorted(reasons.items())),
        "with_metadata": sum(1 for item in items if item.get("rights")),
        "people_checked": sum(1 for item in items if item.get("people") is not None),
        "people_found": sum(1 for item in items if (item.get("people") or {}).get("faces")),
        "refused": [item["image_id"] for item in items if item["decision"] == REFUSED],
        "waiting_for_consent": [item["image_id"] for item in items if item["decision"] == NEEDS_CONSENT],
        **({"policy_name": policy.name} if policy else {}),
    }


def rights_by_image(run_root: str) -> dict[str, dict[str, Any]]:
    """The run's rights decision per image id (empty when the run had no rights check)."""
    decision = read_json_if_exists(RunLayout(run_root).rights_decision)
    return {item["image_id"]: item for item in (decision or {}).get("items", [])}


#: the audit partition the rights check writes beside its run's (publish replaces only its own files)
RIGHTS_AUDIT_SUFFIX = ".rights"


def write_rights_audit(items: list[dict[str, Any]], workspace: str, *, run: Mapping[str, Any],
                       consent: bool = False) -> str | None:
    """Audit records for the images the rights check stopped (``consent``: that a consent reviewer decided)."""
    from airflow_image_catalog.pipeline.publishing.audit import write_audit  # duckdb
    from airflow_image_catalog.pipeline.publishing.audit.records import (
        CONSENT_EVENTS,
        RIGHTS_CHECK_EVENTS,
        rights_records,
    )
    from airflow_image_catalog.workspace.manifest import safe_run_key

    rows = rights_records(items, run=run, events=CONSENT_EVENTS if consent else RIGHTS_CHECK_EVENTS)
    if not rows:
        return None
    return write_audit(rows, workspace, run_key=safe_run_key(str(run["run_id"])) + RIGHTS_AUDIT_SUFFIX)
