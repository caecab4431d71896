"""Facet contents from the pipeline's manifests, as plain dicts (no OpenLineage import).

The keys are the facets' field names (see :mod:`airflow_image_catalog.lineage.facets` and ``schemas/``), so
``ImageCatalogEditRunFacet(**edit_fields(...))`` builds the facet; tests check them without a client.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_image_catalog.pipeline.costing.pricing.estimate import usage_tokens


def prompt_hashes(steps: Iterable[Any]) -> list[dict[str, str]]:
    """sha256 of each recipe step's prompt: proves which prompt ran without publishing its text."""
    return [{"step": str(step.id), "sha256": hashlib.sha256(str(step.prompt).encode()).hexdigest()}
            for step in steps]


def edit_fields(manifest: Mapping[str, Any], prompts: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The edit facet from an edit manifest (``EditManifest.to_dict()``) and the recipe's prompt hashes."""
    items = manifest.get("items") or []
    counts = Counter(str(item.get("status")) for item in items)
    recipe = manifest.get("recipe") or {}
    rounds = [entry for item in items for entry in item.get("rounds") or []]
    return {
        "backend": str(manifest.get("backend") or ""),
        "model": str(manifest.get("model") or ""),
        "recipe": str(recipe.get("name") or ""),
        "recipeFingerprint": recipe.get("fingerprint"),
        "prompts": [dict(p) for p in prompts],
        "images": len(items),
        "statusCounts": dict(sorted({**(manifest.get("counts") or {}), **counts}.items())),
        "cacheHits": sum(1 for item in items if item.get("cache_hit")),
        "rounds": len(rounds),
        "regenerations": sum(1 for entry in rounds if entry.get("decision") == "regenerated_from_source"),
        "attempts": sum(int(item.get("attempts") or 0) for item in items),
        "chunkIndex": manifest.get("chunk_index"),
    }


def usage_totals(entries: Iterable[Any]) -> dict[str, Any]:
    """Paid calls, USD, tokens and credits from ledger entries (``LedgerEntry`` or their dicts)."""
    calls, usd, tokens_in, tokens_out, credits = 0, [], 0, 0, 0.0
    for entry in entries:
        data = entry if isinstance(entry, Mapping) else entry.to_dict()
        usage = data.get("usage") or {}
        calls += 1
        usd.append(float(data.get("usd") or 0.0))
        tokens = usage_tokens(usage)
        if tokens is not None:
            tokens_in += tokens.image_in + tokens.text_in
            tokens_out += tokens.image_out
        credits += float(usage.get("credits") or 0.0)
    return {"paidCalls": calls, "actual": round(math.fsum(usd), 9), "inputTokens": tokens_in,
            "outputTokens": tokens_out, "credits": round(credits, 6)}


def cost_fields(decision: Mapping[str, Any] | None, entries: Iterable[Any] = (), *, scope: str = "run",
                images: int | None = None, cache_hits: int | None = None,
                routed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cost facet: the cost check's decision (``decision.json``) and the ledger's entries; a routed run's
    figures (``routed``: the cost report's ``routing``, once publish wrote it) under ``routing``.

    For ``scope="chunk"`` give the chunk's ``images`` and ``cache_hits``: its estimate is the
    decision's per-image reservation times the images that were not cache hits.
    """
    decision = decision or {}
    fields: dict[str, Any] = {"scope": scope, "currency": "USD", **usage_totals(entries)}
    if scope == "chunk":
        per_image = decision.get("per_image_usd")
        paid = (images or 0) - (cache_hits or 0)
        fields.update(images=images, cacheHits=cache_hits,
                      estimate=round(float(per_image) * paid, 6) if per_image is not None else None)
    else:
        fields.update(estimate=decision.get("estimate_usd"), estimateLow=decision.get("low_usd"),
                      estimateHigh=decision.get("high_usd"), images=decision.get("images"),
                      cacheHits=decision.get("cache_hits"))
    fields.update(decision=decision.get("action"), policy=decision.get("policy"),
                  limitedBy=decision.get("limited_by"))
    if scope == "run":
        fields["routing"] = routing_fields(decision.get("routing"), routed)
    return fields


def routing_fields(planned: Mapping[str, Any] | None, done: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The cost facet's ``routing``: the cost decision's plan (``planned``) and, once published, what the run
    did (``done``: the cost report's ``routing``); None when the run was not routed."""
    if not planned and not done:
        return None
    planned, done = planned or {}, done or {}
    expected = planned.get("expected") or {}
    fields: dict[str, Any] = {
        "images": int(done.get("images") or sum((planned.get("counts") or {}).values())),
        "candidates": ({n: int(r["routed"]) for n, r in done["candidates"].items()} if done.get("candidates")
                       else dict(planned.get("counts") or {})),
        "explored": int(planned.get("explored") or sum(r.get("explored", 0) for r in (done.get("candidates") or {}).values())),
        "targetPassRate": planned.get("target", done.get("target")),
        "expectedUsdPerPass": expected.get("usd_per_pass", done.get("expected_usd_per_pass")),
    }
    if done:
        escalations = done.get("escalations") or {}
        fields.update(escalations=escalations.get("attempted"), escalationsPassed=escalations.get("passed"),
                      escalationsNotSent=escalations.get("not_sent"), passRate=done.get("pass_rate"),
                      actualUsdPerPass=done.get("actual_usd_per_pass"), fixedCandidate=done.get("fixed_candidate"),
                      fixedUsdPerPass=done.get("fixed_usd_per_pass"), savingVsFixed=done.get("saving_vs_fixed"),
                      savingVsStrongest=done.get("saving_vs_strongest"))
    return fields


def quality_fields(gate: Mapping[str, Any], min_pass_rate: float | None = None) -> dict[str, Any]:
    """The quality facet from a gate manifest (``airflow_image_catalog.pipeline.quality.gate.gate_chunk``)."""
    counts = gate.get("counts") or {}
    failed = Counter(str(f.get("label")) for item in gate.get("items") or [] for f in item.get("failed") or [])
    return {
        "suite": str(gate.get("profile") or ""),
        "suiteOrigin": gate.get("profile_origin"),
        "intent": gate.get("intent"),
        "passed": int(counts.get("pass", 0)),
        "quarantined": int(counts.get("quarantined", 0)),
        "notGated": int(counts.get("not_gated", 0)),
        "passRate": gate.get("pass_rate"),
        "minPassRate": min_pass_rate,
        "failedExpectations": dict(sorted(failed.items())),
        "chunkIndex": gate.get("chunk_index"),
    }


def assertion_fields(gate: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The gate's per-expectation results as OpenLineage data-quality assertions (label, success, metric)."""
    return [{"assertion": str(a["assertion"]), "success": bool(a["success"]), "column": a.get("column")}
            for a in gate.get("assertions") or []]


def rights_fields(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The rights facet from the rights check's ``rights/decision.json`` (counts only: no image ids, no metadata)."""
    counts = decision.get("counts") or {}
    return {
        "policy": str((decision.get("policy") or {}).get("name") or decision.get("policy_name") or ""),
        "images": int(decision.get("images") or 0),
        "go": int(counts.get("go", 0)),
        "needsConsent": int(counts.get("needs_consent", 0)),
        "refused": int(counts.get("refused", 0)),
        "withMetadata": int(decision.get("with_metadata") or 0),
        "peopleChecked": int(decision.get("people_checked") or 0),
        "peopleFound": int(decision.get("people_found") or 0),
        "reasons": dict(sorted((decision.get("reasons") or {}).items())),
    }
