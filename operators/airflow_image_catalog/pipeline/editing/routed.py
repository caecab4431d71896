"""A routed chunk's edit: each image on the candidate the run's routing plan gave it.

The chunk splits by candidate; each part is an ordinary :class:`~airflow_image_catalog.pipeline.editing.chunk.ChunkRun`
on that candidate's backend (the connection with the candidate's overrides, through the hook), so
every stage (resume, cache, budget guard, ledger, idempotency) is the one unrouted chunks run, and the
cache key carries the candidate's backend identity: a rerun never pays twice, and two candidates never
share a result. The parts run one after the other under one mid-run guard; the records come back in the
chunk's order, each with its ``routing`` (the plan's choice and the first attempt of its chain).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from airflow_image_catalog.backends.base import EditBackend
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.pipeline.editing.inline import aedit_chunk
from airflow_image_catalog.pipeline.editing.task import budget_guard
from airflow_image_catalog.recipes import Recipe, load_recipe, manifest_entry
from airflow_image_catalog.storage import read_json, read_json_if_exists
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest, EditRecord, SourceItem

ROUTED_BACKEND = "routed"  # an edit manifest's backend when its images went to several candidates


@dataclass
class RoutedPart:
    """The images of a chunk that go to one candidate, as the run that edits them."""

    candidate: str
    run: ChunkRun


def candidate_runs(chunk: ChunkManifest, items: Mapping[str, SourceItem], by_candidate: Mapping[str, list[str]], *,
                   plan: Mapping[str, Any], recipe: Recipe, workspace: str, run_root: str,
                   get_backend: Callable[[dict[str, Any] | None], EditBackend], decision: Mapping[str, Any],
                   facts: Mapping[str, Any] | None = None, concurrency: int | None = None,
                   use_cache: bool = True) -> list[RoutedPart]:
    """One :class:`ChunkRun` per candidate over its images (``by_candidate``: candidate -> image ids), under
    ``run_root``; their ledger estimates are the plan's per-image prices. The parts share one guard."""
    overrides = {c["name"]: dict(c["overrides"]) for c in plan["candidates"]}
    routes = plan["routes"]
    ledger, guard, parts = Ledger(workspace), None, []
    for candidate, image_ids in by_candidate.items():
        if not image_ids:
            continue
        backend = get_backend(overrides[candidate])
        prices = [routes[i]["prices"][candidate] for i in image_ids if i in routes]
        paid = backend.capabilities.paid
        if paid and guard is None:
            guard = budget_guard(decision, ledger, chunk.run_key, 0.0)
        run = ChunkRun(replace(chunk, items=[items[i] for i in image_ids]), recipe, backend, run_root,
                       workspace=workspace if use_cache else None, concurrency=concurrency,
                       ledger=ledger if paid else None, facts=dict(facts or {}),
                       estimate_usd=max(prices) if prices else None, guard=guard if paid else None,
                       overrides=overrides[candidate])
        parts.append(RoutedPart(candidate, run))
    return parts


def high_price(plan: Mapping[str, Any], candidate: str, image_ids: list[str]) -> float:
    """What the guard holds per image of a part: the top of the candidate's band, the dearest of these images."""
    routes = plan["routes"]
    return max((routes[i]["highs"][candidate] for i in image_ids if i in routes), default=0.0)


def edit_parts(parts: list[RoutedPart], plan: Mapping[str, Any]) -> dict[str, tuple[str, EditRecord]]:
    """Edit every part, one after the other; image id -> (candidate, record)."""
    records: dict[str, tuple[str, EditRecord]] = {}
    for part in parts:
        if part.run.guard is not None:
            part.run.guard.hold_usd = high_price(plan, part.candidate, [i.image_id for i in part.run.chunk.items])
        for record in asyncio.run(aedit_chunk(part.run)):
            records[record.image_id] = (part.candidate, record)
    return records


def attempt(candidate: str, run: ChunkRun, record: EditRecord) -> dict[str, Any]:
    """One link of an image's chain: where it was edited and how that ended (the gate's verdict comes later)."""
    return {"candidate": candidate, "backend": run.backend.name, "model": run.backend.model,
            "status": str(record.status), "cache_key": record.cache_key, "cache_hit": record.cache_hit,
            "output_uri": record.output_uri, "verdict": None}


def routed_manifest(chunk: ChunkManifest, recipe: Recipe, records: list[EditRecord], candidates: list[str]) -> EditManifest:
    return EditManifest(run_key=chunk.run_key, chunk_index=chunk.chunk_index, recipe=manifest_entry(recipe),
                        backend=ROUTED_BACKEND, model=", ".join(dict.fromkeys(candidates)), items=records)


def edit_routed_chunk(chunk_manifest_uri: str, recipe: str, workspace: str,
                      get_backend: Callable[[dict[str, Any] | None], EditBackend], *,
                      facts: Mapping[str, Any] | None = None, concurrency: int | None = None,
                      use_cache: bool = True) -> EditManifest | None:
    """The chunk edited as the run's routing plan says, or None when the run is not routed (no plan)."""
    chunk = ChunkManifest.from_dict(read_json(chunk_manifest_uri))
    layout = WorkspaceLayout(workspace).run(chunk.run_key)
    plan = read_json_if_exists(layout.routing_plan)
    if plan is None:
        return None
    decision = read_json_if_exists(layout.cost_decision, {})
    order = [c["name"] for c in plan["candidates"]]
    routes = plan["routes"]
    by_candidate: dict[str, list[str]] = {name: [] for name in order}
    for item in chunk.items:  # an image the plan does not know (none should be) goes to the strongest
        by_candidate[routes.get(item.image_id, {}).get("candidate", order[-1])].append(item.image_id)
    loaded = load_recipe(recipe)
    parts = candidate_runs(chunk, {i.image_id: i for i in chunk.items}, by_candidate, plan=plan, recipe=loaded,
                           workspace=workspace, run_root=layout.root, get_backend=get_backend, decision=decision,
                           facts=facts, concurrency=concurrency, use_cache=use_cache)
    runs = {part.candidate: part.run for part in parts}
    edited = edit_parts(parts, plan)
    records = []
    for item in chunk.items:
        candidate, record = edited[item.image_id]
        route = routes.get(item.image_id) or {"candidate": candidate, "bucket": None, "reason": "unplanned"}
        record.routing = {**{k: route.get(k) for k in ("bucket", "reason", "expected_pass", "expected_usd",
                                                         "escalate_to")},
                          "candidate": candidate, "attempts": [attempt(candidate, runs[candidate], record)]}
        records.append(record)
    return routed_manifest(chunk, loaded, records, [c for c, _ in edited.values()])
