"""Publish the passing images of a run and write its report.

Only images whose edit succeeded and that passed the quality gate (where one ran)
are published; each copy is checked against the sha256 recorded at edit time, so
a corrupted or swapped output is never published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.pipeline.costing.ledger import (
    Ledger,
    cost_summary,
    possibly_billed_calls,
    reconcile,
)
from airflow_image_catalog.pipeline.publishing.outcome import EDIT_FAILED, RunOutcome
from airflow_image_catalog.pipeline.publishing.provenance import (
    ProvenanceFacts,
    ProvenanceStep,
    signer_from_env,
)
from airflow_image_catalog.pipeline.publishing.report import render_html
from airflow_image_catalog.pipeline.quality.reasons import reason_text
from airflow_image_catalog.recipes import RecipeError, load_recipe
from airflow_image_catalog.storage import (
    StorageError,
    join_uri,
    read_bytes,
    read_json,
    read_json_if_exists,
    write_bytes,
    write_json,
)
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
from airflow_image_catalog.workspace.manifest import (
    FINAL_STATUSES,
    EditManifest,
    ImageStatus,
    sha256_hex,
)

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1


@dataclass
class ChunkResult:
    """One chunk's edit manifest and, when the quality gate ran, its gate manifest."""

    edit: EditManifest
    gate: dict[str, Any] | None = None

    def verdicts(self) -> dict[str, dict[str, Any]]:
        return {item["image_id"]: item for item in self.gate["items"]} if self.gate else {}


def load_chunk_results(uris: list[str]) -> list[ChunkResult]:
    """Accept edit manifests or gate manifests (which point at their edit manifest)."""
    results = []
    for uri in uris:
        data = read_json(uri)
        if data.get("kind") == "gate":
            results.append(ChunkResult(EditManifest.from_dict(read_json(data["edit_manifest_uri"])), data))
        else:
            results.append(ChunkResult(EditManifest.from_dict(data)))
    return sorted(results, key=lambda r: r.edit.chunk_index)


def publish_image(image_id: str, output_uri: str, sha256: str, published_root: str, *, provenance: Any = None,
                  signer: Any = None, **facts: Any) -> dict[str, Any]:
    """Copy one verified output to ``published_root/<image_id>.<ext>``; return its published entry.

    With ``provenance`` (:class:`~airflow_image_catalog.pipeline.publishing.provenance.ProvenanceFacts`) the published file carries
    IPTC/XMP marking the edit (and a signed C2PA manifest when ``signer`` is given); ``sha256`` is
    then the published bytes' and ``output_sha256`` the verified edit output's.
    """
    data = read_bytes(output_uri)
    if sha256_hex(data) != sha256:
        raise StorageError(f"output {output_uri} does not match its recorded sha256")
    extension = output_uri.rsplit(".", 1)[-1]
    target = join_uri(published_root, f"{image_id}.{extension}")
    embedded = None
    if provenance is not None:
        from airflow_image_catalog.pipeline.publishing.provenance import ProvenanceError, apply_provenance

        try:
            data, embedded = apply_provenance(data, extension, provenance, c2pa_signer=signer)
        except ProvenanceError as exc:  # e.g. a format without XMP support: publish it unlabelled, say so
            log.warning("%s: published without provenance metadata: %s", image_id, exc)
    return {"image_id": image_id, "published_uri": write_bytes(target, data), "sha256": sha256_hex(data),
            "output_sha256": sha256, "provenance": embedded and {k: embedded.get(k) for k in (
                "digital_source_type", "xmp", "c2pa")}, **facts}


def provenance_for(record: Any, edit: EditManifest, steps: dict[str, str], run_id: str | None,
                   rights: dict[str, Any] | None = None) -> Any:
    """What the published file says about itself: source, recipe (prompt hashes), backend, model, run, and
    the source's rights (``rights``: the image's rights-check item, whose metadata is carried over)."""
    from airflow_image_catalog.pipeline.rights.metadata import RightsMetadata, publishable

    last = ((record.routing or {}).get("attempts") or [{}])[-1]  # a routed image: where its output was made
    return ProvenanceFacts(
        source_sha256=record.source_sha256, recipe_name=edit.recipe.get("name"),
        recipe_fingerprint=edit.recipe.get("fingerprint"), backend=last.get("backend") or edit.backend,
        model=last.get("model") or edit.model,
        steps=[ProvenanceStep.from_prompt(step["id"], steps.get(step["id"], "")) for step in record.steps
               if "id" in step],
        run_id=run_id, published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rights=publishable(RightsMetadata.from_dict(rights["rights"])) if rights and rights.get("rights") else None)


def _step_prompts(results: list[ChunkResult]) -> dict[str, str]:
    """Step id -> prompt of the run's recipe (the edit manifest names the recipe file)."""
    recipe = results[0].edit.recipe if results else {}
    origin = recipe.get("ref") or recipe.get("origin")
    try:
        return {step.id: step.prompt for step in load_recipe(origin).steps} if origin else {}
    except (RecipeError, StorageError, OSError):
        return {}


def outcome_results(outcome: RunOutcome) -> list[ChunkResult]:
    """The results of the chunks that wrote an edit manifest; a gate verdict only where the chunk's
    edit succeeded (a failed edit's chunk was not gated this try, whatever an earlier try left)."""
    return load_chunk_results([c.gate_manifest_uri if c.gate_manifest_uri and c.status != EDIT_FAILED
                               else c.edit_manifest_uri for c in outcome.chunks if c.edit_manifest_uri])


def publish_run(
    results: list[ChunkResult], *, published_root: str, workspace: str, run_root: str, run: dict[str, Any],
    outcome: RunOutcome | None = None, discovery: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy passing outputs to ``published_root``, update the published manifest, write the report.

    ``outcome`` (the run's chunk statuses and publishing policy, see
    :mod:`~airflow_image_catalog.pipeline.publishing.outcome`) decides which chunks publish; the
    edited images of the others are ``held`` with the reason. Without it every chunk publishes.
    ``discovery`` (the run's ``discovery.json``) tells what the source held beyond the images this run
    took on: the counts say it (``found`` = ``changed`` + ``unchanged`` + ``refused_before``; of the
    changed, the rights check held ``waiting_for_consent`` and refused ``rights_refused``), and it names
    the recipe when no chunk reached the edit.
    """
    from airflow_image_catalog.pipeline.rights.check import rights_by_image

    outcome = outcome or RunOutcome("partial", [], [])
    published, failures, quarantined, held = [], [], [], []
    signer, prompts, rights = signer_from_env(), _step_prompts(results), rights_by_image(run_root)
    for result in results:
        verdicts = result.verdicts()
        for record in result.edit.items:
            verdict = verdicts.get(record.image_id, {})
            if record.status != ImageStatus.EDITED:
                failures.append({"image_id": record.image_id, "source_uri": record.source_uri,
                                 "source_sha256": record.source_sha256, "source_bytes": record.source_bytes,
                                 "source_etag": record.source_etag, "recipe_fingerprint":
                                 result.edit.recipe.get("fingerprint"), "status": record.status,
                                 "error_code": record.error_code, "error": record.error})
                continue
            if verdict.get("verdict") == "quarantined":
                quarantined.append({
                    "image_id": record.image_id,
                    "quarantine_uri": verdict.get("quarantine_uri"),
                    "failed": [f["label"] for f in verdict.get("failed", [])],
                    "reasons": [reason_text(f) for f in verdict.get("failed", [])],
                })
                continue
            if outcome.chunks and not outcome.publishes(result.edit.chunk_index):
                held.append({"image_id": record.image_id, "chunk_index": result.edit.chunk_index,
                             "reason": outcome.held_reason(result.edit.chunk_index)})
                continue
            try:
                published.append(publish_image(
                    record.image_id, record.output_uri, record.output_sha256, published_root,
                    provenance=provenance_for(record, result.edit, prompts, run.get("run_id"),
                                              rights.get(record.image_id)), signer=signer,
                    source_uri=record.source_uri, source_sha256=record.source_sha256,
                    source_bytes=record.source_bytes, source_etag=record.source_etag,
                    recipe_fingerprint=result.edit.recipe.get("fingerprint"),
                    width=record.width, height=record.height,
                ))
            except StorageError as exc:
                failures.append({"image_id": record.image_id, "source_uri": record.source_uri,
                                 "status": "publish_failed", "error": str(exc)})
    record_published(workspace, published, run, failures)
    from airflow_image_catalog.pipeline.publishing.audit import audit_records, write_audit

    layout = RunLayout(run_root)
    run_key = layout.run_key
    entries = Ledger(workspace).entries(run_key=run_key)
    cost = cost_report(results, entries, run_root=run_root, published=len(published))
    taken = sum(len(r.edit.items) for r in results)  # the images an edit task took on
    edited = sum(r.edit.counts().get(ImageStatus.EDITED, 0) for r in results)
    rights_check = _rights_summary(run_root)
    gates = [r.gate for r in results if r.gate]
    report = {
        "kind": "run_report",
        "schema_version": REPORT_SCHEMA_VERSION,
        **run,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": results[0].edit.recipe if results else (discovery or {}).get("recipe"),
        "backends": sorted({f"{r.edit.backend} ({r.edit.model})" for r in results}),
        "published_root": published_root,
        "counts": {
            **discovery_counts(discovery, taken=taken, rights=rights_check),
            "edited": edited,
            "failed": taken - edited,
            "quarantined": len(quarantined),
            "published": len(published),
            **_state_counts(results, cost),
        },
        "cost": cost,
        "routing": cost.get("routing"),
        "quality": _quality_summary(gates, edited),
        "rights": rights_check,
        "edit_seconds": round(sum(r.seconds or 0 for res in results for r in res.edit.items), 3),
        "outcome": {**outcome.summary(), "held": len(held)},
        "published": published,
        "quarantined": quarantined,
        "failures": failures,
        "held": held,
        "published_manifest": WorkspaceLayout(workspace).published_manifest,
        "report_html": layout.report_html,
        "report_json": layout.report_json,
    }
    records = audit_records(results, published=published, quarantined=quarantined, ledger_entries=entries,
                            run={**run, "run_key": run_key}, published_at=report["finished_at"], rights=rights)
    report["audit_uri"] = write_audit(records, workspace, run_key=run_key)
    write_json(report["report_json"], report)
    write_bytes(report["report_html"], render_html(report, results).encode())
    return report


def discovery_counts(discovery: dict[str, Any] | None, *, taken: int, rights: dict[str, Any] | None) -> dict[str, int]:
    """What the source held and what of it the run took on, so an unchanged catalog reads "17 found,
    0 new or changed", not "found 0" (an empty source): ``found`` counts every image the catalog covers
    (``changed`` + ``unchanged`` + ``refused_before``); of the ``changed``, the rights check held
    ``waiting_for_consent`` and refused ``rights_refused`` before any edit. Without a discovery summary
    (a report from before it was kept) only what an edit took on is known."""
    by_decision = (rights or {}).get("counts") or {}
    waiting, refused = int(by_decision.get("needs_consent") or 0), int(by_decision.get("refused") or 0)
    if discovery is None:
        changed, unchanged, refused_before = taken + waiting + refused, 0, 0
    else:
        changed = int(discovery.get("images") or 0)
        unchanged, refused_before = int(discovery.get("unchanged") or 0), len(discovery.get("refused_before") or [])
    return {"found": changed + unchanged + refused_before, "changed": changed, "unchanged": unchanged,
            "refused_before": refused_before, "waiting_for_consent": waiting, "rights_refused": refused}


def _rights_summary(run_root: str) -> dict[str, Any] | None:
    """The run's rights check as the report shows it (None: the run had none)."""
    decision = read_json_if_exists(RunLayout(run_root).rights_decision)
    if decision is None:
        return None
    return {k: decision.get(k) for k in ("policy_name", "images", "counts", "reasons", "with_metadata",
                                         "people_checked", "people_found", "refused", "waiting_for_consent")}


def _state_counts(results: list[ChunkResult], cost: dict[str, Any]) -> dict[str, int]:
    """How each image ended (``failed_retryable`` ones are redone by a rerun), how many came from the
    cache, and how many the cost check's cap left out (``skipped_budget`` with the mid-run guard's)."""
    counts = dict.fromkeys(FINAL_STATUSES[1:], 0)
    counts["cache_hits"] = 0
    for result in results:
        for record in result.edit.items:
            if record.status in counts:
                counts[record.status] += 1
            counts["cache_hits"] += record.cache_hit
    counts[ImageStatus.SKIPPED_BUDGET] += len((cost.get("decision") or {}).get("skipped_budget") or [])
    return counts


def cost_report(results: list[ChunkResult], entries: list[Any], *, run_root: str, published: int) -> dict[str, Any]:
    """The run's cost: the cost check's decision, what the ledger booked (``entries``), estimate vs
    actual, per recipe / model / provider, and a routed run's routing figures
    (:func:`~airflow_image_catalog.pipeline.routing.summary.routing_summary`); also written to
    ``runs/<run>/cost/report.json``."""
    from airflow_image_catalog.pipeline.routing.summary import routing_summary

    layout = RunLayout(run_root)
    uri = layout.cost_decision
    decision = read_json_if_exists(uri)
    actual = round(sum(entry.usd for entry in entries if not entry.possibly_billed), 6)
    possibly = possibly_billed_calls(entries)
    records = [record for result in results for record in result.edit.items]
    edited = [r for r in records if r.status == ImageStatus.EDITED]
    estimate = None
    if decision is not None:  # what the edited, paid-for images were expected to cost
        estimate = round(decision["per_image_usd"] * sum(not r.cache_hit for r in edited), 6)
    report = {
        "currency": "USD",
        "decision": decision,
        "actual_usd": actual,
        "paid_calls": len(entries) - len(possibly),
        # attempts whose answer was lost after the body was sent: maybe billed a second time (docs/backends.md
        # "Billing safety"); not in actual_usd, counted by the budgets
        "possibly_billed_usd": round(sum(call["usd"] for call in possibly), 6),
        "possibly_billed": possibly,
        "images_edited": len(edited),
        "cache_hits": sum(r.cache_hit for r in records),
        "cost_per_published_image_usd": round(actual / published, 6) if published else None,
        "reconciliation": None if estimate is None else reconcile(estimate, actual),
        **cost_summary(entries),
        "routing": routing_summary(read_json_if_exists(layout.routing_plan), records,
                                   {i: v.get("verdict") for r in results for i, v in r.verdicts().items()}, entries),
    }
    write_json(layout.cost_report, report)
    return report


def _quality_summary(gates: list[dict[str, Any]], edited: int) -> dict[str, Any] | None:
    """The run's verdict: pass rate over every gated image and the most frequent failures."""
    if not gates:
        return None
    passed = sum(g["counts"]["pass"] for g in gates)
    quarantined = sum(g["counts"]["quarantined"] for g in gates)
    reasons: dict[str, int] = {}
    for gate in gates:
        for item in gate["items"]:
            for failure in item["failed"]:
                reasons[failure["label"]] = reasons.get(failure["label"], 0) + 1
    gated = passed + quarantined
    return {
        "profiles": sorted({g["profile"] for g in gates}),
        "intents": sorted({g["intent"] for g in gates}),
        "passed": passed,
        "quarantined": quarantined,
        "pass_rate": round(passed / gated, 4) if gated else None,
        "failed_expectations": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "data_docs": [g["data_docs"] for g in gates if g.get("data_docs")],
    }


def record_published(workspace: str, published: list[dict[str, Any]], run: dict[str, Any],
                     failures: list[dict[str, Any]] = ()) -> None:
    """The catalog's current state: image id -> what is published, from which source, by which run.

    Final failures are remembered too (``failed_final``: moderation, an unreadable upload), so
    the next refresh does not pay to be refused again for the same bytes and recipe; a new
    version of the image, or a new recipe, is tried again.
    """
    uri = WorkspaceLayout(workspace).published_manifest
    current = read_json_if_exists(uri, {"images": {}})
    refused = current.setdefault("failed_final", {})
    for entry in published:
        current["images"][entry["image_id"]] = {**entry, "run_id": run.get("run_id")}
        refused.pop(entry["image_id"], None)
    for failure in failures:
        if failure.get("status") == ImageStatus.FAILED_FINAL:
            refused[failure["image_id"]] = {**failure, "run_id": run.get("run_id")}
    current["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(uri, current)
