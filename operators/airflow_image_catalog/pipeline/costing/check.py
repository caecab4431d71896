"""The cost check of one run, end to end: gather the images, price them, decide, write the decision.

What ``CostCheckOperator.execute`` used to hold, as plain functions (no Airflow import) so the
operator only reads its arguments, calls :func:`check_run_cost` and turns the action into
Airflow's outcome (fail / skip / the chunk manifests to edit). :mod:`.decision` stays the pure
planning over plain data; this module does the reading and writing around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from airflow_image_catalog.pipeline.costing.decision import (
    Budgets,
    Decision,
    decide,
    price_images,
)
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.costing.pricing import load_prices
from airflow_image_catalog.storage import StorageError, delete, exists, read_json, write_json
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest

#: the Airflow Variables a budget falls back to when its argument (DAG param) is empty
BUDGET_VARIABLES = {"run": "catalog_budget_run_usd", "day": "catalog_budget_day_usd",
                    "month": "catalog_budget_month_usd"}
#: connection extras that change a request's price
PRICED_SETTINGS = ("size", "quality", "input_fidelity", "n")
#: what the decision's XCom (``cost_decision``) carries: small, no per-image lists
SUMMARY_FIELDS = ("action", "policy", "message", "estimate_usd", "low_usd", "high_usd", "images", "cache_hits",
                  "available_usd", "limited_by", "overrides", "variants", "routing")


def budget_amount(value: Any) -> float | None:
    """A budget from a param or a rendered template; empty / ``None`` = no limit."""
    if value is None or str(value).strip() in ("", "None", "null"):
        return None
    amount = float(value)
    if amount < 0:
        raise ValueError(f"a budget cannot be negative: {value!r}")
    return amount


def resolve_budgets(given: Mapping[str, Any], variable: Callable[[str], Any]) -> Budgets:
    """The run / day / month budgets: ``given[name]``, else the Variable ``variable(BUDGET_VARIABLES[name])``."""
    values = {}
    for name, variable_name in BUDGET_VARIABLES.items():
        value = budget_amount(given.get(name))
        values[name] = value if value is not None else budget_amount(variable(variable_name))
    return Budgets(**values)


def image_facts(chunks: Iterable[ChunkManifest], recipe, backend, *, run_root: str, workspace: str,
                priorities: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each image's size, priority and whether the result cache already holds its edit."""
    from airflow_image_catalog.pipeline.editing.chunk import ChunkRun  # the edit stage: backends, imaging

    items = []
    for chunk in chunks:
        run = ChunkRun(chunk, recipe, backend, run_root, workspace=workspace)
        for item in chunk.items:
            try:
                hit = run.cache.get_meta(run.key_for(item)) is not None
            except (StorageError, ValueError):  # a missing mask fails at edit time, free
                hit = False
            items.append({"image_id": item.image_id, "width": item.width, "height": item.height,
                          "cache_hit": hit, "priority": float(priorities.get(item.image_id, 0))})
    return items


def capped_chunks(chunks: Iterable[ChunkManifest], kept: set[str], run_root: str) -> list[str]:
    """Chunk manifests of only the ``kept`` images (``cap``), under ``chunks/capped/``; their URIs."""
    uris = []
    for chunk in chunks:
        items = [item for item in chunk.items if item.image_id in kept]
        if items:
            uris.append(write_json(RunLayout(run_root).capped_chunk(chunk.chunk_index), replace(chunk, items=items).to_dict()))
    return uris


def decision_summary(decision: Decision) -> dict[str, Any]:
    """The decision as the ``cost_decision`` XCom carries it."""
    return {k: getattr(decision, k) for k in SUMMARY_FIELDS} | {"skipped_budget": len(decision.skipped_budget)}


@dataclass
class CostCheck:
    """What a cost check decided, and the chunk manifests the edit task should map over."""

    decision: Decision
    chunk_uris: list[str]


def routed_costs(chunks: list[ChunkManifest], routing: Any, *, recipe, backend_name: str, model: str | None,
                 settings: Mapping[str, Any], run_root: str, workspace: str, price_table: Any,
                 backend_for: Callable[[dict[str, Any]], Any] | None) -> tuple[dict[str, Any], list[Any]]:
    """A routed run's plan and per-image costs (:func:`~airflow_image_catalog.pipeline.routing.plan.plan_routes`):
    a candidate's cached result is free; the plan goes to ``runs/<run>/routing/plan.json``."""
    from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
    from airflow_image_catalog.pipeline.routing.plan import RoutingError, plan_routes

    layout = RunLayout(run_root)
    items = {item.image_id: (chunk, item) for chunk in chunks for item in chunk.items}
    overrides = {c.name: dict(c.overrides) for c in routing.candidates}
    for name, changes in overrides.items():  # routed chunks edit inline: a route that only has jobs cannot
        if backend_for is not None and backend_for(changes).capabilities.jobs_only:
            raise RoutingError(f"routing_candidates: candidate {name!r} is on a jobs-only route "
                               f"({changes.get('backend')}); routed runs edit inline")
    keyed: dict[str, Any] = {}

    def cache_hit(image_id: str, candidate: str) -> bool:
        if backend_for is None:
            return False
        chunk, item = items[image_id]
        if candidate not in keyed:
            keyed[candidate] = ChunkRun(chunk, recipe, backend_for(overrides[candidate]), run_root, workspace=workspace)
        run = keyed[candidate]
        try:
            return run.cache.get_meta(run.key_for(item)) is not None
        except (StorageError, ValueError):
            return False

    plan, costs = plan_routes(chunks, routing, recipe=recipe, backend_name=backend_name, model=model,
                              settings=settings, run_key=layout.run_key, prices=price_table, cache_hit=cache_hit)
    plan["uri"] = layout.routing_plan
    write_json(layout.routing_plan, plan)
    return plan, costs


def routing_brief(plan: Mapping[str, Any]) -> dict[str, Any]:
    """What the cost decision says of a routed run: where its plan is, images per candidate, what it expects."""
    return {"plan": plan["uri"], "target": plan["target"], "counts": plan["counts"], "explored": plan["explored"],
            "expected": plan["expected"], "fixed": plan["fixed"]}


def check_run_cost(chunk_uris: list[str], *, recipe, backend, backend_name: str, extras: Mapping[str, Any],
                   workspace: str, run_root: str, policy: str, budgets: Budgets, prices: str | None = None,
                   priority_file: str | None = None, compare_with: str | None = None,
                   now: datetime | None = None, routing: Any = None,
                   backend_for: Callable[[dict[str, Any]], Any] | None = None) -> CostCheck:
    """Price the run's images (cache hits free), decide by ``policy`` and write ``cost/decision.json``.

    :param chunk_uris: the discover task's chunk manifests.
    :param recipe: the loaded recipe the run applies.
    :param backend: the backend the edit task will call (its ``model`` and cache identity).
    :param backend_name: the connection's backend (``openai``, ``bfl``, ``local``, ...).
    :param extras: the connection's extras (the priced settings are taken from them).
    :param prices: a price file overriding the shipped table (empty: shipped).
    :param priority_file: JSON ``{"image_id": priority}`` for ``cap``.
    :param compare_with: also price the run on ``backend:model`` for the report.
    :param routing: a :class:`~airflow_image_catalog.pipeline.routing.plan.RoutingRequest`: route the run (each
        image priced on its candidate, with the escalation reserve); None: every image on the connection.
    :param backend_for: overrides -> the backend they make (a candidate's cache hits are free).
    """
    chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in chunk_uris]
    price_table = load_prices(prices or None)
    priorities = read_json(priority_file) if priority_file else {}
    items = image_facts(chunks, recipe, backend, run_root=run_root, workspace=workspace, priorities=priorities)
    settings = {k: v for k, v in extras.items() if k in PRICED_SETTINGS}
    model = backend.model if backend_name != "local" else None

    def reprice(overrides: dict[str, Any]):
        changed = dict(overrides)
        name = str(changed.pop("backend", backend_name))
        return price_images(items, recipe, name, changed.pop("model", model), {**settings, **changed},
                            prices=price_table)

    now = now or datetime.now(UTC)
    ledger = Ledger(workspace)
    plan = None
    if routing is not None:
        from airflow_image_catalog.pipeline.routing.plan import RoutingError, policy_problem

        if problem := policy_problem(str(policy)):
            raise RoutingError(problem)
        plan, costs = routed_costs(chunks, routing, recipe=recipe, backend_name=backend_name, model=model,
                                   settings=settings, run_root=run_root, workspace=workspace,
                                   price_table=price_table, backend_for=backend_for)
    else:
        costs = reprice({})
        if exists(RunLayout(run_root).routing_plan):  # an earlier try was routed, this one is not
            delete(RunLayout(run_root).routing_plan)
    decision = decide(costs, policy=str(policy), budgets=budgets,
                      spent_day=ledger.spent(day=now.strftime("%Y-%m-%d")),
                      spent_month=ledger.spent(month=now.strftime("%Y-%m")), reprice=reprice,
                      backend=backend_name, settings=settings)
    decision.routing = routing_brief(plan) if plan else None
    if compare_with:
        other, _, other_model = str(compare_with).partition(":")
        priced = price_images(items, recipe, other, other_model or None, {}, prices=price_table)
        decision.variants[str(compare_with)] = {
            "usd": round(sum(c.usd for c in priced if not c.cache_hit), 6),
            "low_usd": round(sum(c.low_usd for c in priced if not c.cache_hit), 6),
            "high_usd": round(sum(c.high_usd for c in priced if not c.cache_hit), 6)}
    write_json(RunLayout(run_root).cost_decision, decision.to_dict())
    uris = capped_chunks(chunks, set(decision.kept or []), run_root) if decision.action == "cap" else list(chunk_uris)
    return CostCheck(decision, uris)
