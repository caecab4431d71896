"""Escalation: an image of a routed run that failed the gate is edited once more, on the next stronger
candidate, and gated again; its record keeps the chain of both attempts.

Runs after the quality gate, per chunk. The escalated edits have a run root of their own
(``runs/<run>/escalation/``: state, outputs), so the first attempt's output and state stay as they were and
a rerun resumes the escalation's own state; the cache key carries the stronger candidate's backend
identity, so nothing is paid twice. The run's mid-run guard admits an escalation only if the top of its
band still fits in the run's budget after everything booked so far: an escalation the budget cannot pay
is not sent (its attempt says ``skipped_budget``) and the image keeps its first verdict.

The chunk's merged manifests (``escalation/edits/chunk-NNNNN.json`` and ``escalation/quality/chunk-NNNNN.json``:
every image, the escalated ones with their second attempt) are what publish reads for a routed run.
A first attempt that an escalation made pass leaves the review queue (``superseded_by`` on its
quarantine record); one that failed again is quarantined as its stronger attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_image_catalog.backends.base import EditBackend
from airflow_image_catalog.pipeline.editing.routed import attempt, candidate_runs, edit_parts, routed_manifest
from airflow_image_catalog.storage import join_uri, read_json, read_json_if_exists, write_json
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest, EditRecord, ImageStatus

log = logging.getLogger(__name__)

PASS, QUARANTINED = "pass", "quarantined"


def merged_gate(gate: Mapping[str, Any], items: list[dict[str, Any]], *, edit_manifest_uri: str,
                min_pass_rate: float | None) -> dict[str, Any]:
    """The chunk's gate manifest over ``items`` (escalated verdicts in), its counts, pass rate and failure."""
    counts = {v: sum(1 for i in items if i["verdict"] == v) for v in (PASS, QUARANTINED, "not_gated")}
    gated = counts[PASS] + counts[QUARANTINED]
    rate = round(counts[PASS] / gated, 4) if gated else None
    below = min_pass_rate is not None and rate is not None and rate < min_pass_rate
    failure = (f"chunk {gate['chunk_index']}: pass rate {rate:.0%} after escalation is below {min_pass_rate:.0%} "
               f"({counts[QUARANTINED]} quarantined)" if below else None)
    return {**gate, "items": items, "counts": counts, "pass_rate": rate, "failure": failure,
            "edit_manifest_uri": edit_manifest_uri, "escalated": True}


def _supersede(quarantine_root: str, image_id: str, by: Mapping[str, Any]) -> None:
    """The first attempt's quarantine record leaves the review queue: a stronger attempt passed."""
    uri = join_uri(quarantine_root, f"{image_id}.json")
    record = read_json_if_exists(uri)
    if record is not None and not record.get("review"):
        write_json(uri, {**record, "superseded_by": dict(by)})


@dataclass
class EscalationJob:
    """A routed chunk after its gate: its edit manifest, gate manifest, plan, recipe and quality profile."""

    workspace: str
    manifest: EditManifest
    gate: dict[str, Any]
    plan: dict[str, Any]
    recipe: Any
    profile: Any


def load_escalation(edit_manifest_uri: str, workspace: str, profile: str = "") -> EscalationJob | None:
    """The chunk's escalation job, or None: the run is not routed, or the gate wrote no verdict for the chunk.

    :param profile: the quality profile (name or file) the gate used; empty = the recipe's.
    """
    from airflow_image_catalog.pipeline.quality.profiles import load_profile
    from airflow_image_catalog.recipes import load_recipe

    manifest = EditManifest.from_dict(read_json(edit_manifest_uri))
    run = WorkspaceLayout(workspace).run(manifest.run_key)
    plan = read_json_if_exists(run.routing_plan)
    gate = read_json_if_exists(run.gate(manifest.chunk_index))
    if plan is None or gate is None:
        return None
    recipe = load_recipe(manifest.recipe.get("ref") or manifest.recipe["origin"])
    return EscalationJob(workspace, manifest, gate, plan, recipe, load_profile(profile or recipe.quality.profile))


def escalate_chunk(job: EscalationJob, get_backend: Callable[[dict[str, Any] | None], EditBackend], *,
                   min_pass_rate: float | None = None, ocr: bool = True, facts: Mapping[str, Any] | None = None,
                   concurrency: int | None = None) -> str:
    """Escalate the chunk's quarantined images once; the merged gate manifest's URI."""
    from airflow_image_catalog.pipeline.quality.gate import gate_chunk

    manifest, gate, plan, recipe, profile, workspace = (job.manifest, job.gate, job.plan, job.recipe, job.profile,
                                                        job.workspace)
    layout = WorkspaceLayout(workspace)
    run = layout.run(manifest.run_key)
    verdicts = {item["image_id"]: item for item in gate["items"]}
    wanted: dict[str, list[str]] = {}
    for record in manifest.items:
        if not record.routing:
            continue
        verdict = verdicts.get(record.image_id, {}).get("verdict")
        record.routing["attempts"][-1]["verdict"] = verdict
        target = record.routing.get("escalate_to")
        if verdict == QUARANTINED and target and len(record.routing["attempts"]) == 1:
            wanted.setdefault(target, []).append(record.image_id)
    escalation = RunLayout(run.escalation)
    escalated: dict[str, tuple[str, EditRecord]] = {}
    second: dict[str, dict[str, Any]] = {}
    quarantine = layout.run_quarantine(manifest.run_key)
    chunk = ChunkManifest.from_dict(read_json(run.chunk(manifest.chunk_index)))
    if wanted:
        decision = read_json_if_exists(run.cost_decision, {})
        parts = candidate_runs(chunk, {i.image_id: i for i in chunk.items}, wanted, plan=plan, recipe=recipe,
                               workspace=workspace, run_root=escalation.root, get_backend=get_backend,
                               decision=decision, facts=facts, concurrency=concurrency)
        runs = {part.candidate: part.run for part in parts}
        escalated = edit_parts(parts, plan)
        edited = [r for _, r in escalated.values() if r.status == ImageStatus.EDITED]
        if edited:
            gated = gate_chunk(routed_manifest(chunk, recipe, edited, [c for c, _ in escalated.values()]), recipe,
                               profile, source_root=chunk.source_root, quarantine_root=quarantine, docs_root=None,
                               ocr=ocr)
            second = {item["image_id"]: item for item in gated["items"]}
        log.info("chunk %d: escalated %d images (%s): %d passed", manifest.chunk_index, len(escalated),
                 ", ".join(f"{n} to {c}" for c, n in ((c, len(ids)) for c, ids in wanted.items())),
                 sum(item["verdict"] == PASS for item in second.values()))
    records, items = [], []
    for record in manifest.items:
        item = verdicts.get(record.image_id) or {"image_id": record.image_id, "verdict": "not_gated", "failed": []}
        if record.image_id not in escalated:
            records.append(record)
            items.append(item)
            continue
        candidate, again = escalated[record.image_id]
        link = {**attempt(candidate, runs[candidate], again), "error": again.error}
        verdict = second.get(record.image_id)
        link["verdict"] = verdict["verdict"] if verdict else None
        chain = {**record.routing, "escalated": True, "attempts": [*record.routing["attempts"], link]}
        if verdict is None:  # not edited (the budget, a failure): the image keeps its first attempt and verdict
            record.routing = chain
            records.append(record)
            items.append(item)
            continue
        again.routing = chain
        records.append(again)
        items.append(verdict)
        if verdict["verdict"] == PASS:
            _supersede(quarantine, record.image_id, {"candidate": candidate, "run_key": manifest.run_key,
                                                     "output_uri": again.output_uri})
        else:  # the gate quarantined the stronger attempt in the first one's place: its record carries the chain
            uri = join_uri(quarantine, f"{record.image_id}.json")
            write_json(uri, {**read_json(uri), "routing": chain})
    merged = EditManifest(**{**{k: getattr(manifest, k) for k in ("run_key", "chunk_index", "recipe", "backend",
                                                                    "model", "failure")}, "items": records})
    edit_uri = write_json(escalation.edit(manifest.chunk_index), merged.to_dict())
    return write_json(escalation.gate(manifest.chunk_index),
                      merged_gate(gate, items, edit_manifest_uri=edit_uri, min_pass_rate=min_pass_rate))


def escalate_run(chunk_uris: list[str], workspace: str, get_backend: Callable[[dict[str, Any] | None], EditBackend],
                 *, profile: str = "", min_pass_rate: float | None = None, ocr: bool = True,
                 facts: Mapping[str, Any] | None = None) -> list[str]:
    """Escalate every chunk of a routed run, one after the other; the merged gate manifests' URIs (none: the
    run is not routed). A chunk whose edit or gate wrote no manifest has nothing to escalate."""
    from airflow_image_catalog.storage import exists

    uris: list[str] = []
    for uri in chunk_uris:
        chunk = ChunkManifest.from_dict(read_json(uri))
        run = WorkspaceLayout(workspace).run(chunk.run_key)
        if not exists(run.routing_plan):
            return []
        edit = run.edit(chunk.chunk_index)
        job = load_escalation(edit, workspace, profile) if exists(edit) else None
        if job is not None:
            uris.append(escalate_chunk(job, get_backend, min_pass_rate=min_pass_rate, ocr=ocr, facts=facts))
    return uris
