"""What a routed run did, as the run report, the cost report, the lineage cost facet and the UI show it.

From the plan (the routing table the router used and its expectations), the merged edit and gate
manifests (each image's chain of attempts and final verdict) and the ledger (what each attempt cost):
images per candidate, escalations, expected against actual cost per passing image, and the saving
against the single fixed candidate (the canary's choice, else the cheapest whose expected pass rate
meets the target) and against always using the strongest, both priced on the same images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PASS = "pass"


def priced_chain(routing: Mapping[str, Any], entries: Iterable[Any], verdict: str | None) -> dict[str, Any]:
    """``routing`` with each attempt's ``cost_usd`` (this run's ledger entries under its cache key) and the
    last edited attempt's verdict set to ``verdict`` (the gate's, after any escalation)."""
    listed = list(entries)
    attempts = []
    for index, link in enumerate(routing.get("attempts") or []):
        cost = math.fsum(e.usd for e in listed if link.get("cache_key") and e.cache_key == link["cache_key"])
        link = {**link, "cost_usd": round(cost, 9)}
        if index == len(routing["attempts"]) - 1 and link.get("status") == "edited" and verdict:
            link["verdict"] = verdict
        attempts.append(link)
    return {**routing, "attempts": attempts}


def fixed_reference(plan: Mapping[str, Any]) -> str | None:
    """The single fixed candidate a routed run is compared with: the canary decision's choice, else the
    one with the lowest expected cost per passing image among those whose expected pass rate meets the target."""
    fixed = plan.get("fixed") or {}
    chosen = (plan.get("decision") or {}).get("chosen")
    if chosen in fixed:
        return chosen
    meeting = [n for n, f in fixed.items() if f.get("pass_rate") is not None and f["pass_rate"] >= plan["target"]
               and f.get("usd_per_pass") is not None]
    if meeting:
        return min(meeting, key=lambda n: fixed[n]["usd_per_pass"])
    return next(reversed(fixed), None) if fixed else None


def ordered_candidates(routing: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A routing summary's candidate rows weakest first (its ``order``; JSON documents sort their keys)."""
    rows = routing["candidates"]
    return [(name, rows[name]) for name in routing.get("order") or rows if name in rows]


def _saving(actual: float | None, other: float | None) -> float | None:
    return None if actual is None or not other else round(1.0 - actual / other, 4)


def routing_summary(plan: Mapping[str, Any] | None, records: Sequence[Any], verdicts: Mapping[str, str],
                    entries: Iterable[Any]) -> dict[str, Any] | None:
    """The routed run's figures (None: the run was not routed).

    :param records: the run's edit records (merged after escalation).
    :param verdicts: image id -> its final gate verdict.
    :param entries: the run's ledger entries.
    """
    if not plan:
        return None
    by_image: dict[str, list[Any]] = {}
    for entry in entries:
        by_image.setdefault(entry.image_id, []).append(entry)
    order = [c["name"] for c in plan["candidates"]]
    rows = {name: {"routed": 0, "explored": 0, "attempts": 0, "passed": 0, "quarantined": 0, "usd": 0.0}
            for name in order}
    escalations = {"attempted": 0, "passed": 0, "quarantined": 0, "not_sent": 0, "usd": 0.0}
    passed, actual = 0, 0.0
    for record in records:
        routing = getattr(record, "routing", None)
        if not routing:
            continue
        verdict = verdicts.get(record.image_id)
        chain = priced_chain(routing, by_image.get(record.image_id, []), verdict)
        rows[routing["candidate"]]["routed"] += 1
        rows[routing["candidate"]]["explored"] += routing.get("reason") == "explore"
        for index, link in enumerate(chain["attempts"]):
            row = rows[link["candidate"]]
            row["usd"] += link["cost_usd"]
            actual += link["cost_usd"]
            if link.get("status") == "edited":
                row["attempts"] += 1
                row["passed"] += link.get("verdict") == PASS
                row["quarantined"] += link.get("verdict") == "quarantined"
            if index:
                escalations["usd"] += link["cost_usd"]
                if link.get("status") != "edited":
                    escalations["not_sent"] += 1
                    continue
                escalations["attempted"] += 1
                escalations["passed"] += link.get("verdict") == PASS
                escalations["quarantined"] += link.get("verdict") == "quarantined"
        passed += verdict == PASS
    routed = sum(r["routed"] for r in rows.values())
    expected = dict(plan.get("expected") or {})
    actual_per_pass = round(actual / passed, 9) if passed else None
    reference = fixed_reference(plan)
    fixed = plan.get("fixed") or {}
    strongest = order[-1] if order else None
    per_pass = {name: (fixed.get(name) or {}).get("usd_per_pass") for name in order}
    for name, row in rows.items():
        row["usd"] = round(row["usd"], 9)
        estimate = (plan.get("estimates") or {}).get("any", {}).get(name) or {}
        row["pass_probability"] = estimate.get("pass_probability")
        row["fixed_usd_per_pass"] = per_pass[name]
    return {
        "target": plan.get("target"), "explore_share": plan.get("explore_share"), "images": routed,
        "order": order,  # the candidates weakest first (documents written with sorted keys lose the dict's order)
        "candidates": rows, "estimates": plan.get("estimates"), "decision": plan.get("decision"),
        "escalations": {**escalations, "usd": round(escalations["usd"], 9)},
        "passed": passed, "pass_rate": round(passed / routed, 4) if routed else None, "actual_usd": round(actual, 9),
        "expected_usd": expected.get("usd"), "expected_usd_per_pass": expected.get("usd_per_pass"),
        "expected_pass_rate": expected.get("pass_rate"), "actual_usd_per_pass": actual_per_pass,
        "fixed_candidate": reference, "fixed_usd_per_pass": per_pass.get(reference) if reference else None,
        "saving_vs_fixed": _saving(actual_per_pass, per_pass.get(reference) if reference else None),
        "strongest": strongest, "strongest_usd_per_pass": per_pass.get(strongest) if strongest else None,
        "saving_vs_strongest": _saving(actual_per_pass, per_pass.get(strongest) if strongest else None),
    }
