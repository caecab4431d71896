"""A canary run: edit a stratified sample with every candidate, gate and price each, choose, record.

The plain functions behind ``catalog_canary``'s canary tasks (the edit and the gate are the
catalog's own operators, mapped over one chunk per candidate):

1. :func:`sample_canary` - the free features of a pool of the source, a stratified sample of N,
   and one chunk manifest per candidate under the candidate's own run key
   (``WorkspaceLayout.candidate_run_key``), so each candidate's outputs, state, cost decision and
   ledger entries are its own and the existing edit and gate tasks run on them unchanged;
2. :func:`check_canary_cost` - the normal cost check for each candidate's chunk with the candidate's
   overrides, against what is left of the budgets after the candidates before it: the canary's own
   spend is checked before anything is paid and booked in the ledger like any run's;
3. :func:`decide_canary` - per candidate the pass rate with its Wilson 95 % interval, cost per
   image and per passing image, time per image and failure reasons; the cheapest candidate whose
   lower bound meets the target; the versioned routing decision and the canary's table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.routing.candidates import Candidate, CandidateList
from airflow_image_catalog.pipeline.routing.decision import RoutingDecision
from airflow_image_catalog.pipeline.routing.figures import CandidateFigures

#: features are computed for this many images per sampled image (at least ``MIN_POOL``), not the whole source
POOL_FACTOR = 10
MIN_POOL = 200
#: budget policies a canary takes: a downgrade or a cap would measure something else than the candidate
POLICIES = ("fail", "skip")


class CanaryError(CatalogError, ValueError):
    """A canary cannot run as asked (no images, a bad sample size, a policy it cannot take)."""


def sample_canary(chunk_uris: Sequence[str], *, workspace: str, run_key: str, candidates: CandidateList,
                  size: int, seed: str) -> list[str]:
    """Draw the sample and write one chunk manifest per candidate; their URIs, in candidate order.

    Writes ``runs/<run>/canary/sample.json``: the sample's ids, each pooled image's features and
    stratum, and the images whose features could not be read (left out of the sample).
    """
    from airflow_image_catalog.pipeline.routing.features import image_features
    from airflow_image_catalog.pipeline.routing.sample import pool, strata_counts, stratified_sample
    from airflow_image_catalog.storage import read_bytes, read_json, write_json
    from airflow_image_catalog.workspace.layout import WorkspaceLayout
    from airflow_image_catalog.workspace.manifest import ChunkManifest

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CanaryError(f"sample_size: must be a whole number >= 1, got {size!r}")
    chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in chunk_uris]
    items = {item.image_id: item for chunk in chunks for item in chunk.items}
    if not items:
        raise CanaryError("the source has no images to sample (after the rights check)")
    shas = {image_id: item.source_sha256 for image_id, item in items.items()}
    features, unreadable = {}, {}
    for image_id in pool(shas, max(POOL_FACTOR * size, MIN_POOL), seed):
        try:
            features[image_id] = image_features(read_bytes(items[image_id].source_uri)).to_dict()
        except Exception as exc:  # an image the features cannot read would fail its edit too: not sampled
            unreadable[image_id] = f"{type(exc).__name__}: {exc}"
    strata = {image_id: f["stratum"] for image_id, f in features.items()}
    if not strata:
        raise CanaryError(f"no image of the source could be read ({len(unreadable)} tried)")
    chosen = stratified_sample(strata, shas, size, seed)
    layout = WorkspaceLayout(workspace)
    write_json(layout.run(run_key).canary_sample, {
        "kind": "canary_sample", "image_ids": chosen, "seed": seed, "size": size, "source_images": len(items),
        "pooled": len(features) + len(unreadable), "strata": strata_counts(strata, chosen),
        "pool_strata": strata_counts(strata, list(strata)), "features": {i: features[i] for i in chosen},
        "unreadable": unreadable, "source_root": chunks[0].source_root})
    uris = []
    for candidate in candidates:
        key = layout.candidate_run_key(run_key, candidate.name)
        manifest = ChunkManifest(run_key=key, chunk_index=0, source_root=chunks[0].source_root,
                                 items=[items[image_id] for image_id in chosen])
        uris.append(write_json(layout.run(key).chunk(0), manifest.to_dict()))
    return uris


@dataclass
class CanaryCost:
    """The canary's cost check: ``action`` go / fail / skip, why, and each candidate's estimate."""

    action: str
    message: str
    estimate_usd: float
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunk_uris: list[str] = field(default_factory=list)


def _less(limit: float | None, used: float) -> float | None:
    return None if limit is None else max(0.0, limit - used)


def check_canary_cost(chunk_uris: Sequence[str], *, candidates: CandidateList, recipe: Any,
                      resolve: Callable[[dict[str, Any]], tuple[str, dict[str, Any], Any]], workspace: str,
                      policy: str, budgets: Any, prices: str | None = None, now: datetime | None = None) -> CanaryCost:
    """The normal cost check (:func:`~airflow_image_catalog.pipeline.costing.check.check_run_cost`) for each
    candidate's chunk, in order, each against the budgets less the estimates of the candidates before it.

    :param resolve: the candidate's overrides -> (backend name, connection extras, backend), as the
        connection with the overrides applied (``hooks.image_edit.with_overrides``) gives them.
    :param policy: ``fail`` or ``skip``: the first candidate that does not fit stops the whole canary.
    :returns: ``go`` with the chunk URIs to edit; each candidate's ``cost/decision.json`` carries its
        overrides, so the edit task builds the candidate's backend and its mid-run guard.
    """
    from airflow_image_catalog.pipeline.costing.check import check_run_cost
    from airflow_image_catalog.pipeline.costing.decision import Budgets
    from airflow_image_catalog.storage import read_json, write_json
    from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
    from airflow_image_catalog.workspace.manifest import ChunkManifest

    if policy not in POLICIES:
        raise CanaryError(f"budget_policy: a canary takes {' or '.join(POLICIES)}, got {policy!r} (a downgrade "
                          "or a cap would measure something other than the candidates)")
    if len(chunk_uris) != len(candidates):
        raise CanaryError(f"{len(chunk_uris)} candidate chunks for {len(candidates)} candidates")
    committed, report = 0.0, {}
    layout = WorkspaceLayout(workspace)
    for candidate, uri in zip(candidates, chunk_uris, strict=True):
        name, extras, backend = resolve(dict(candidate.overrides))
        run_key = ChunkManifest.from_dict(read_json(uri)).run_key
        run_root = layout.run(run_key).root
        left = Budgets(run=_less(budgets.run, committed), day=_less(budgets.day, committed),
                       month=_less(budgets.month, committed))
        decision = check_run_cost([uri], recipe=recipe, backend=backend, backend_name=name, extras=extras,
                                  workspace=workspace, run_root=run_root, policy=policy, budgets=left,
                                  prices=prices, now=now).decision
        report[candidate.name] = {"backend": name, "model": getattr(backend, "model", None),
                                  "estimate_usd": decision.estimate_usd, "high_usd": decision.high_usd,
                                  "images": decision.images, "cache_hits": decision.cache_hits,
                                  "action": decision.action}
        if decision.action != "go":
            return CanaryCost(decision.action, f"candidate {candidate.name}: {decision.message}",
                              round(committed + decision.estimate_usd, 6), report)
        decision.overrides = {**candidate.overrides, **decision.overrides}  # the edit task builds this backend
        write_json(RunLayout(run_root).cost_decision, decision.to_dict())
        committed += decision.estimate_usd
    message = (f"{len(candidates)} candidates x {report[candidates.names[0]]['images']} images: estimate "
               f"${committed:.4f} within the budgets")
    return CanaryCost("go", message, round(committed, 6), report, list(chunk_uris))


def _list_price(usage: Sequence[Mapping[str, Any]], prices: str | None) -> float:
    """What the records' calls cost at list price: a cache hit's repeated usage is priced too (the
    candidate's cost per image is what the figures are for; what this canary paid is the ledger's)."""
    from airflow_image_catalog.pipeline.costing.pricing import cost_of_usage

    total = 0.0
    for record in usage:
        priced = cost_of_usage({k: v for k, v in record.items() if k not in ("cache_hit", "cached")}, prices)
        total += priced or 0.0
    return total


def candidate_figures(workspace: str, run_key: str, candidate: Candidate, *, target: float,
                      prices: str | None = None) -> tuple[CandidateFigures, dict[str, str]]:
    """One candidate's figures from its edit and gate manifests, and each image's outcome
    (``pass`` or the failure: a gate category, or ``edit:<code>``)."""
    from airflow_image_catalog.pipeline.quality.gate import VERDICT_PASS
    from airflow_image_catalog.storage import read_json, read_json_if_exists
    from airflow_image_catalog.workspace.layout import WorkspaceLayout
    from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest

    layout = WorkspaceLayout(workspace)
    run = layout.run(layout.candidate_run_key(run_key, candidate.name))
    chunk = ChunkManifest.from_dict(read_json(run.chunk(0)))
    edits_doc = read_json_if_exists(run.edit(0))
    edits = {r.image_id: r for r in EditManifest.from_dict(edits_doc).items} if edits_doc else {}
    gate = read_json_if_exists(run.gate(0)) or {"items": []}
    verdicts = {item["image_id"]: item for item in gate["items"]}
    outcomes, failures = {}, {}
    cost, seconds, timed, hits = 0.0, 0.0, 0, 0
    for item in chunk.items:
        record = edits.get(item.image_id)
        if record is None:
            outcome = "edit:not_run"
        else:
            cost += _list_price(record.usage, prices)
            if record.cache_hit:
                hits += 1
            elif record.seconds is not None:
                seconds, timed = seconds + record.seconds, timed + 1
            verdict = verdicts.get(item.image_id)
            if record.status.value != "edited":
                outcome = f"edit:{record.error_code or record.status.value}"
            elif verdict is None:
                outcome = "gate:not_run"
            elif verdict["verdict"] == VERDICT_PASS:
                outcome = "pass"
            else:
                outcome = ",".join(sorted({f.get("category") or "other" for f in verdict["failed"]})) or "other"
        outcomes[item.image_id] = outcome
        if outcome != "pass":
            for reason in outcome.split(","):
                failures[reason] = failures.get(reason, 0) + 1
    images = len(chunk.items)
    passed = sum(outcome == "pass" for outcome in outcomes.values())
    per_image = seconds / timed if timed else 0.0
    figures = CandidateFigures.of(candidate.name, images=images, passed=passed, cost_usd=cost,
                                  seconds=per_image * images, failures=dict(sorted(failures.items())), target=target,
                                  cache_hits=hits)
    return figures, outcomes


def decide_canary(*, workspace: str, run_key: str, recipe: Any, candidates: CandidateList, target: float,
                  run: Mapping[str, Any], prices: str | None = None) -> tuple[RoutingDecision, dict[str, Any]]:
    """Figures per candidate, the choice, the versioned routing decision and the canary's report
    (``canary/report.json`` with each image's outcome per candidate and what the canary spent;
    ``canary/report.md`` the table)."""
    from airflow_image_catalog.pipeline.costing.ledger import Ledger
    from airflow_image_catalog.pipeline.routing.decision import make_decision, write_decision
    from airflow_image_catalog.storage import read_json, write_bytes, write_json
    from airflow_image_catalog.workspace.layout import WorkspaceLayout

    if not 0 <= float(target) <= 1:
        raise CanaryError(f"target_pass_rate: must be 0..1, got {target!r}")
    from airflow_image_catalog.storage import read_json_if_exists

    layout = WorkspaceLayout(workspace)
    stopped = [c.name for c in candidates if (read_json_if_exists(
        layout.run(layout.candidate_run_key(run_key, c.name)).cost_decision) or {}).get("action") != "go"]
    if stopped:  # a decision from a canary that never ran would route on nothing
        raise CanaryError(f"the canary's cost check did not let candidate(s) {', '.join(stopped)} run: "
                          "no routing decision recorded")
    sample = read_json(layout.run(run_key).canary_sample)
    figures, outcomes = [], {}
    for candidate in candidates:
        figure, outcome = candidate_figures(workspace, run_key, candidate, target=float(target), prices=prices)
        figures.append(figure)
        outcomes[candidate.name] = outcome
    decision = write_decision(workspace, make_decision(
        recipe, target_pass_rate=float(target), candidates=list(candidates), figures=figures,
        sample={"image_ids": sample["image_ids"], "strata": sample["strata"], "seed": sample["seed"],
                "source_root": sample["source_root"], "source_images": sample["source_images"],
                "features": {i: f["stratum"] for i, f in sample["features"].items()}},
        run=dict(run), candidate_list=candidates.name))
    ledger = Ledger(workspace)
    spent = {c.name: ledger.run_spend(layout.candidate_run_key(run_key, c.name)) for c in candidates}
    report = {"kind": "canary_report", "decision": decision.to_dict(),
              "decision_uri": layout.routing_decision(decision.recipe, decision.version),
              "outcomes": outcomes, "spent_usd": spent, "spent_total_usd": round(math.fsum(spent.values()), 9)}
    write_json(layout.run(run_key).canary_report, report)
    write_bytes(layout.run(run_key).canary_table, table_markdown(decision, spent).encode())
    return decision, report


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def table_markdown(decision: RoutingDecision, spent: Mapping[str, float] | None = None) -> str:
    """The canary's table, one row per candidate (weakest first), then the choice and why."""
    spent = spent or {}
    lines = [f"Canary for recipe {decision.recipe}: {len(decision.sample_ids)} images, target pass rate "
             f"{decision.target_pass_rate:.0%} (lower bound of the Wilson 95 % interval)", "",
             "| candidate | settings | passed | pass rate [95 % CI] | cost / image | cost / passing | s / image "
             "| failures | spent | meets target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for candidate in decision.candidates:
        f = decision.figures_for(candidate.name)
        if f is None:
            continue
        settings = ", ".join(f"{k}={v}" for k, v in candidate.overrides.items())
        failures = ", ".join(f"{k} {v}" for k, v in f.failures.items()) or "-"
        seconds = "-" if f.seconds_per_image is None else f"{f.seconds_per_image:.2f}"
        lines.append(f"| {candidate.name} | {settings} | {f.passed}/{f.images} | {f.pass_rate:.0%} "
                     f"[{f.lower:.0%}, {f.upper:.0%}] | {_usd(f.cost_per_image_usd)} | {_usd(f.cost_per_passing_usd)} "
                     f"| {seconds} | {failures} | {_usd(spent.get(candidate.name))} | "
                     f"{'yes' if f.meets_target else 'no'} |")
    lines += ["", f"Chosen: {decision.chosen or 'none'} - {decision.reason}",
              f"Decision version {decision.version} ({decision.created_at})"]
    return "\n".join(lines) + "\n"
