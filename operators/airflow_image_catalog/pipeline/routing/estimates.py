"""What the router believes: each candidate's pass probability per recipe and feature bucket.

Two sources, added as Beta counts (:class:`~airflow_image_catalog.pipeline.routing.router.PassEstimate`):

- the latest canary decision of the recipe (its sample's passes and trials per candidate), the prior,
  counted in every bucket (the canary's sample is stratified, not bucketed);
- the audit trail: every attempt a routed run recorded in an image's ``routing_json`` (candidate,
  bucket, gate verdict), with a reviewer's later decision on the image's last attempt taking the gate's
  place (an approval is a pass, a rejection a failure).

Costs are not learnt here: each image is priced on each candidate by the price table at its own size
(the cost check's :func:`~airflow_image_catalog.pipeline.costing.decision.price_images`), which the
ledger reconciles run by run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_image_catalog.pipeline.routing.router import ANY_BUCKET, PassEstimate

log = logging.getLogger(__name__)

#: the gate verdicts and review decisions an attempt's outcome is read from
PASSING = frozenset({"pass", "approved"})
FAILING = frozenset({"quarantined", "rejected"})
#: how many trials the recipe-wide estimate weighs in a bucket's: a bucket's own data overrules it after a few
BUCKET_WEIGHT = 4.0


def attempt_outcomes(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every judged attempt in audit ``rows`` as ``{candidate, bucket, passed}``, reviews applied.

    ``rows`` are audit records (``event``, ``run_key``, ``image_id``, ``routing_json``,
    ``review_decision``); records without ``routing_json`` (runs that were not routed) are skipped.
    """
    chains: dict[tuple[str, str], list[dict[str, Any]]] = {}
    reviews: dict[tuple[str, str], str] = {}
    for row in rows:
        if not row.get("routing_json"):
            continue
        key = (str(row.get("run_key")), str(row.get("image_id")))
        if row.get("event") in ("approved", "rejected"):
            reviews[key] = str(row["event"])
        if row.get("event") in ("published", "quarantined") or key not in chains:
            routing = json.loads(row["routing_json"])
            chains[key] = [{**attempt, "bucket": attempt.get("bucket") or routing.get("bucket") or ANY_BUCKET}
                           for attempt in routing.get("attempts") or []]
    outcomes = []
    for key, attempts in chains.items():
        judged = [a for a in attempts if a.get("verdict") in PASSING | FAILING]
        for index, attempt in enumerate(judged):
            verdict = reviews.get(key, attempt["verdict"]) if index == len(judged) - 1 else attempt["verdict"]
            outcomes.append({"candidate": attempt["candidate"], "bucket": attempt["bucket"],
                             "passed": verdict in PASSING})
    return outcomes


def canary_prior(decision: Any, candidates: Sequence[str]) -> dict[str, tuple[float, float]]:
    """candidate -> (passes, trials) of the canary's sample (a
    :class:`~airflow_image_catalog.pipeline.routing.decision.RoutingDecision`; None: an empty prior)."""
    if decision is None:
        return {}
    return {f.candidate: (float(f.passed), float(f.images)) for f in decision.figures
            if f.candidate in candidates and f.images}


def canary_outcomes(decision: Any, report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The canary's per-image results as judged attempts, each in its image's bucket (the decision's sample
    holds every sampled image's stratum, the canary's ``report.json`` each image's outcome per candidate);
    edits that failed before the gate (``edit:...``, ``gate:not_run``) say nothing of quality and are left out.
    None or a report of another decision: none."""
    if decision is None or not report or (report.get("decision") or {}).get("version") != decision.version:
        return []
    strata = (decision.sample or {}).get("features") or {}
    outcomes = []
    for candidate, per_image in (report.get("outcomes") or {}).items():
        for image_id, outcome in per_image.items():
            if str(outcome).startswith(("edit:", "gate:")):
                continue
            outcomes.append({"candidate": candidate, "bucket": strata.get(image_id) or ANY_BUCKET,
                             "passed": outcome == "pass"})
    return outcomes


def coarse_bucket(bucket: str) -> str:
    """The level above a bucket: its first two features (``backdrop/text``: what decides most edits' fate,
    product shots on plain backdrops against text and scenes), or :data:`ANY_BUCKET` above that."""
    parts = bucket.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else ANY_BUCKET


def estimate_table(candidates: Sequence[str], buckets: Iterable[str], *, outcomes: Iterable[Mapping[str, Any]] = (),
                   prior: Mapping[str, tuple[float, float]] | None = None,
                   bucket_weight: float = BUCKET_WEIGHT) -> dict[str, dict[str, PassEstimate]]:
    """bucket -> candidate -> estimate, for every bucket asked for, their coarse buckets and :data:`ANY_BUCKET`.

    :data:`ANY_BUCKET` holds the canary prior plus every attempt. Below it, each level (the coarse
    ``backdrop/text`` bucket, then the image's full bucket) starts from the level above, shrunk to
    ``bucket_weight`` pseudo-trials, and adds its own attempts: a bucket with no data of its own reads as
    the level above, and one with a little moves towards what it shows, by as much as its data weighs.
    """
    prior = prior or {}
    counts: dict[tuple[str, str], list[float]] = {}
    for outcome in outcomes:
        if outcome["candidate"] not in candidates:
            continue
        bucket = str(outcome["bucket"])
        for level in {bucket, coarse_bucket(bucket), ANY_BUCKET}:
            cell = counts.setdefault((level, outcome["candidate"]), [0.0, 0.0])
            cell[0] += bool(outcome["passed"])
            cell[1] += 1
    overall: dict[str, PassEstimate] = {}
    for name in candidates:
        passes, trials = prior.get(name, (0.0, 0.0))
        basis = [f"canary {passes:g}/{trials:g}"] if trials else []
        seen = counts.get((ANY_BUCKET, name))
        if seen:
            passes, trials = passes + seen[0], trials + seen[1]
            basis.append(f"audit {seen[0]:g}/{seen[1]:g}")
        overall[name] = PassEstimate(passes, trials, tuple(basis) or ("no data",))
    table: dict[str, dict[str, PassEstimate]] = {ANY_BUCKET: overall}

    def level(bucket: str) -> dict[str, PassEstimate]:
        if bucket not in table:
            above = level(coarse_bucket(bucket))
            row = {}
            for name in candidates:
                base = above[name]
                weight = min(bucket_weight, base.weight)
                own = counts.get((bucket, name)) or [0.0, 0.0]
                row[name] = PassEstimate(own[0], own[1], (f"above {base.probability:.2f} as {weight:g} trials",
                                                          f"bucket {own[0]:g}/{own[1]:g}"),
                                         prior_mean=base.probability, prior_weight=weight)
            table[bucket] = row
        return table[bucket]

    for bucket in buckets:
        level(str(bucket))
    return table


def audit_outcomes(workspace: str, recipe_name: str) -> list[dict[str, Any]]:
    """The judged attempts of every routed image of ``recipe_name`` in the workspace's audit store."""
    from airflow_image_catalog.pipeline.publishing.audit.store import open_audit, query

    con = open_audit(workspace)
    try:
        rows = query(con, "SELECT event, run_key, image_id, routing_json, review_decision FROM audit "
                          "WHERE recipe_name = ? AND routing_json IS NOT NULL ORDER BY recorded_at", [recipe_name])
    finally:
        con.close()
    return attempt_outcomes(rows)
