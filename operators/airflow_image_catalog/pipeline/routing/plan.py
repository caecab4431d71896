"""A routed run's plan, made by the cost check before any money is spent: every image's candidate and price.

:func:`plan_routes` reads each image's free features (its bucket), prices it on every candidate at its
own size, asks the router for its candidate, and returns the plan the edit task and the escalation step
follow (``runs/<run>/routing/plan.json``) with the costs the budget decision judges: per image, the
routed candidate's price plus the escalation's, weighted by the chance it is needed (the escalation
reserve); the band's top reserves a full escalation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.costing.decision import ImageCost, price_images
from airflow_image_catalog.pipeline.routing.estimates import estimate_table
from airflow_image_catalog.pipeline.routing.router import (
    ANY_BUCKET,
    DEFAULT_EXPLORE_SHARE,
    PassEstimate,
    Route,
    fixed_value,
    route_image,
)
from airflow_image_catalog.storage import read_bytes
from airflow_image_catalog.workspace.manifest import ChunkManifest

log = logging.getLogger(__name__)

PLAN_SCHEMA_VERSION = 1
#: the pass rate a route must be expected to reach when neither the run nor a canary decision names one
DEFAULT_TARGET = 0.9


class RoutingError(CatalogError, ValueError):
    """A routed run cannot be planned as asked (a bad candidate list, target or share): says which field."""


def setting_problem(name: str, value: Any) -> str | None:
    """Why a routed run's ``routing_target`` (in (0, 1]) or ``routing_explore_share`` (in [0, 0.5)) cannot be
    used, naming the field; None: it can, or it is not set. check_config and :class:`RoutingRequest` both ask."""
    if value in (None, "", "None", "null"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{name}: must be a number, got {value!r}"
    inside, bounds = (0.0 < number <= 1.0, "(0, 1]") if name == "routing_target" else (0.0 <= number < 0.5, "[0, 0.5)")
    return None if inside else f"{name}: {number:g} is out of range {bounds}"


def no_candidates(recipe_name: str) -> str:
    """The problem of a routed run given no candidate list, for a recipe no canary has decided yet."""
    return (f"routing_candidates: none given, and recipe {recipe_name!r} has no canary decision to take them from "
            "(run catalog_canary first, or name a candidate list)")


def policy_problem(policy: str) -> str | None:
    """Why a routed run cannot take this budget policy (None: it can); check_config and the cost check both ask."""
    if str(policy) == "downgrade":
        return ("budget_policy: downgrade does not apply to a routed run (the router already sends each image to "
                "the cheapest candidate expected to pass): use fail, skip or cap")
    return None


@dataclass(frozen=True)
class RoutingRequest:
    """What a routed run asks for: its candidates (weakest first), the recipe's target and the exploration share.

    :param candidates: objects with ``name`` and ``overrides`` (``pipeline.routing.candidates.Candidate``).
    :param prior: the latest canary decision's per-candidate (passes, trials), if any.
    :param outcomes: the audit trail's judged attempts for the recipe
        (:func:`~airflow_image_catalog.pipeline.routing.estimates.audit_outcomes`).
    :param decision: what the prior came from (the canary decision's version and URI), for the report.
    """

    candidates: Sequence[Any]
    target: float
    explore_share: float = DEFAULT_EXPLORE_SHARE
    prior: Mapping[str, tuple[float, float]] | None = None
    outcomes: Sequence[Mapping[str, Any]] = ()
    decision: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.candidates]
        if not names:
            raise RoutingError("routing_candidates: no candidates to route between")
        if len(set(names)) != len(names):
            raise RoutingError(f"routing_candidates: candidate names repeat: {names}")
        for name, value in (("routing_target", self.target), ("routing_explore_share", self.explore_share)):
            if problem := setting_problem(name, value):
                raise RoutingError(problem)


def image_bucket(data: bytes) -> tuple[str, dict[str, Any]]:
    """The image's feature bucket and features (free: computed from its bytes, no call)."""
    from airflow_image_catalog.pipeline.routing.features import image_features

    features = image_features(data)
    return features.stratum, features.to_dict()


def plan_routes(chunks: Sequence[ChunkManifest], request: RoutingRequest, *, recipe: Any, backend_name: str,
                model: str | None, settings: Mapping[str, Any], run_key: str, prices: Any = None,
                cache_hit: Callable[[str, Any], bool] | None = None,
                bucket_of: Callable[[bytes], tuple[str, dict[str, Any]]] = image_bucket,
                ) -> tuple[dict[str, Any], list[ImageCost]]:
    """The run's routing plan and, per image, the cost the budget decision judges.

    :param backend_name, model, settings: the connection's backend, model and priced extras; each
        candidate's ``overrides`` replace them (``backend`` names another route).
    :param cache_hit: ``(image_id, candidate) -> bool``: the candidate's result is already cached (free).
    :param bucket_of: source bytes -> (bucket, features).
    """
    order = [c.name for c in request.candidates]
    items, buckets, features = [], {}, {}
    for chunk in chunks:
        for item in chunk.items:
            try:
                buckets[item.image_id], features[item.image_id] = bucket_of(read_bytes(item.source_uri))
            except Exception as exc:  # unreadable: it fails at edit time, before any paid call
                log.warning("routing: no features for %s (%s): bucket %s", item.image_id, exc, ANY_BUCKET)
                buckets[item.image_id], features[item.image_id] = ANY_BUCKET, {}
            items.append({"image_id": item.image_id, "width": item.width, "height": item.height})
    priced: dict[str, dict[str, ImageCost]] = {}
    for candidate in request.candidates:
        changes = dict(candidate.overrides)
        name = str(changes.pop("backend", backend_name))
        try:
            costs = price_images(items, recipe, name, changes.pop("model", model), {**settings, **changes},
                                 prices=prices)
        except Exception as exc:
            raise RoutingError(f"routing_candidates: candidate {candidate.name!r} cannot be priced: {exc}") from exc
        priced[candidate.name] = {cost.image_id: cost for cost in costs}
    table = estimate_table(order, set(buckets.values()), outcomes=request.outcomes, prior=request.prior)
    routes: dict[str, Route] = {}
    costs: list[ImageCost] = []
    for item in items:
        image_id, bucket = item["image_id"], buckets[item["image_id"]]
        route = route_image(image_id, bucket, order=order, estimates=table[bucket],
                            prices={name: priced[name][image_id].usd for name in order}, target=request.target,
                            explore_share=request.explore_share, salt=run_key)
        routes[image_id] = route
        first, then = priced[route.candidate][image_id], priced.get(route.escalate_to or "", {}).get(image_id)
        hit = bool(cache_hit and cache_hit(image_id, route.candidate))
        costs.append(ImageCost(image_id, route.expected_usd, first.low_usd,
                               first.high_usd + (then.high_usd if then else 0.0), cache_hit=hit))
    highs = {image_id: {name: round(priced[name][image_id].high_usd, 9) for name in order} for image_id in routes}
    plan = plan_document(request, routes, table, features, highs, run_key=run_key, recipe=recipe)
    return plan, costs


def _estimates_dict(table: Mapping[str, Mapping[str, PassEstimate]]) -> dict[str, Any]:
    return {bucket: {name: {"passes": e.passes, "trials": e.trials, "prior_mean": round(e.prior_mean, 6),
                            "prior_weight": e.prior_weight, "pass_probability": round(e.probability, 6),
                            "basis": list(e.basis)} for name, e in row.items()} for bucket, row in table.items()}


def plan_document(request: RoutingRequest, routes: Mapping[str, Route], table: Mapping[str, Mapping[str, PassEstimate]],
                  features: Mapping[str, Mapping[str, Any]], highs: Mapping[str, Mapping[str, float]], *,
                  run_key: str, recipe: Any) -> dict[str, Any]:
    """The plan as written: candidates, the estimates table, each image's route, and the expected figures
    of the routed run against every fixed candidate (no routing, no escalation); ``highs``: each image's band
    top per candidate (what the mid-run guard holds for it)."""
    order = [c.name for c in request.candidates]
    listed = list(routes.values())
    usd = sum(r.expected_usd for r in listed)
    passes = sum(r.expected_pass for r in listed)
    fixed = {name: fixed_value(listed, name, table) for name in order}
    return {
        "kind": "routing_plan", "schema_version": PLAN_SCHEMA_VERSION, "run_key": run_key,
        "recipe": getattr(recipe, "name", None), "target": float(request.target),
        "explore_share": float(request.explore_share),
        "candidates": [{"name": c.name, "overrides": dict(c.overrides)} for c in request.candidates],
        "decision": dict(request.decision or {}) or None,
        "estimates": _estimates_dict(table),
        "routes": {image_id: {**route.to_dict(), "highs": dict(highs.get(image_id) or {}),
                              "features": dict(features.get(image_id) or {})}
                   for image_id, route in routes.items()},
        "expected": {"usd": round(usd, 9), "pass_rate": round(passes / len(listed), 6) if listed else None,
                     "usd_per_pass": round(usd / passes, 9) if passes else None,
                     "escalation_reserve_usd": round(usd - sum(r.prices[r.candidate] for r in listed), 9)},
        "fixed": fixed,
        "counts": {name: sum(r.candidate == name for r in listed) for name in order},
        "explored": sum(r.reason == "explore" for r in listed),
    }


def candidate_overrides(plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """candidate -> its overrides, as the plan recorded them."""
    return {c["name"]: dict(c["overrides"]) for c in plan["candidates"]}


def _number(value: Any, name: str) -> float | None:
    if problem := setting_problem(name, value):
        raise RoutingError(problem)
    return None if value in (None, "", "None", "null") else float(value)


def routing_request(workspace: str, recipe_name: str, *, candidates: str | None = None, target: Any = None,
                    explore_share: Any = None, outcomes: Sequence[Mapping[str, Any]] | None = None) -> RoutingRequest:
    """What a routed run of ``recipe_name`` asks for: the candidates (``candidates``, else the latest canary
    decision's), the target (``target``, else the decision's), the canary's results (per image and bucket from
    its table, else its figures) and the audit trail's judged attempts (``outcomes``, else read from the
    workspace's audit store)."""
    from airflow_image_catalog.pipeline.routing.candidates import load_candidates
    from airflow_image_catalog.pipeline.routing.decision import decision_uri, latest_decision
    from airflow_image_catalog.pipeline.routing.estimates import audit_outcomes, canary_outcomes, canary_prior
    from airflow_image_catalog.storage import read_json_if_exists
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    decision = latest_decision(workspace, recipe_name)
    if candidates:
        listed = list(load_candidates(candidates))
    elif decision is not None:
        listed = list(decision.candidates)
    else:
        raise RoutingError(no_candidates(recipe_name))
    chosen_target = _number(target, "routing_target")
    if chosen_target is None:
        chosen_target = decision.target_pass_rate if decision is not None else DEFAULT_TARGET
    share = _number(explore_share, "routing_explore_share")
    facts = None
    if decision is not None:
        facts = {"version": decision.version, "uri": decision_uri(workspace, recipe_name, decision.version),
                 "chosen": decision.chosen, "target": decision.target_pass_rate, "created_at": decision.created_at}
    # the canary's table holds each sampled image's outcome per candidate: counted in the image's bucket; without
    # it (an older canary, a table gone) its figures count in every bucket alike
    run_key = (decision.run or {}).get("run_key") if decision is not None else None
    table = read_json_if_exists(WorkspaceLayout(workspace).run(run_key).canary_report) if run_key else None
    sampled = canary_outcomes(decision, table)
    learnt = list(audit_outcomes(workspace, recipe_name) if outcomes is None else outcomes)
    return RoutingRequest(
        candidates=listed, target=chosen_target, explore_share=DEFAULT_EXPLORE_SHARE if share is None else share,
        prior=None if sampled else canary_prior(decision, [c.name for c in listed]), outcomes=sampled + learnt,
        decision=facts)
