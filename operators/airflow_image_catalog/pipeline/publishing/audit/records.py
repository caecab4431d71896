"""Audit records: one flat, typed row per published, quarantined or reviewed image.

Analysts trace a published image back to its source, recipe, prompts, model, cost, quality scores
and the DAG run and task that made it. Everything comes from what the publish step already holds
(edit and gate manifests, the ledger entries of the run, the run's facts); nothing is read again
from the images. The column set is an allow-list (:data:`COLUMNS`): usage dicts are reduced to
totals, URIs lose credentials and query strings, and free-form JSON (metrics, prompts, rounds,
preparation) is scrubbed of secret-looking keys and values, so no credential reaches a record.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_image_catalog import __version__
from airflow_image_catalog.pipeline.costing.ledger import _tokens
from airflow_image_catalog.workspace.manifest import safe_run_key

log = logging.getLogger(__name__)

AUDIT_SCHEMA_VERSION = 1
EVENTS = ("published", "quarantined", "approved", "rejected",
          "refused", "consent_requested", "consent_granted", "consent_denied")  # the last four: rights
#: gate metrics kept as typed columns (all of them are also in ``metrics_json``); ``bg_exact_share`` is only
#: in records written before the gate judged the canvas itself (``bg_off_share``); reads union by name
METRIC_COLUMNS = ("ssim_preserved", "psnr_preserved", "delta_e_preserved", "seam_score", "bg_exact_share",
                  "product_fill", "sharpness_ratio", "phash_distance", "product_ssim", "bg_off_share",
                  "product_coverage", "detail_ratio")

#: column -> DuckDB type; the order is the Parquet column order. ``day`` and ``run`` are not here:
#: they are the hive partition keys, added from the object path when reading.
COLUMNS: dict[str, str] = {
    "schema_version": "INTEGER",
    "event": "VARCHAR",  # one of EVENTS
    "image_id": "VARCHAR",
    "run_key": "VARCHAR",  # storage-safe run id: runs/<run_key>/, ledger and audit partitions
    "run_id": "VARCHAR",
    "dag_id": "VARCHAR",
    "task_id": "VARCHAR",  # the edit task
    "map_index": "INTEGER",  # the edit task instance (None: not recorded, see README of the package)
    "try_number": "INTEGER",
    "chunk_index": "INTEGER",
    "recorded_by": "VARCHAR",  # dag_id/run_id/task_id of the task that wrote this record (publish or review)
    "source_uri": "VARCHAR",
    "source_sha256": "VARCHAR",
    "source_bytes": "BIGINT",
    "source_etag": "VARCHAR",
    "output_uri": "VARCHAR",  # the run's edited output
    "output_sha256": "VARCHAR",  # the edit's output (verified on publish); = the quarantined copy's
    "output_format": "VARCHAR",
    "width": "INTEGER",
    "height": "INTEGER",
    "published_uri": "VARCHAR",
    "published_sha256": "VARCHAR",  # the published bytes (differ from the output when provenance is embedded)
    "provenance_json": "VARCHAR",  # what publish embedded (IPTC/XMP digital source type, C2PA), if anything
    "quarantine_uri": "VARCHAR",
    "recipe_name": "VARCHAR",
    "recipe_fingerprint": "VARCHAR",
    "recipe_origin": "VARCHAR",
    "recipe_version": "INTEGER",
    "step_ids": "VARCHAR[]",
    "prompts_json": "VARCHAR",  # [{id, prompt, op, mask}] of the recipe that ran
    "backend": "VARCHAR",  # a routed image's: the backend of its last attempt
    "model": "VARCHAR",
    "operators_version": "VARCHAR",  # this package (the local engine's version) when the record was written
    "tokens_in": "BIGINT",
    "tokens_out": "BIGINT",
    "credits": "DOUBLE",
    "images_generated": "INTEGER",
    "paid_calls": "INTEGER",  # ledger entries of this image in this run
    "cost_usd": "DOUBLE",  # what this run paid for this image (ledger); 0 for cache hits and the local engine
    "estimated_usd": "DOUBLE",
    "cost_basis": "VARCHAR",
    "cache_hit": "BOOLEAN",
    "cache_key": "VARCHAR",
    "attempts": "INTEGER",
    "edit_seconds": "DOUBLE",
    "rounds": "INTEGER",
    "drift_decisions": "VARCHAR[]",
    "rounds_json": "VARCHAR",
    "preparation_json": "VARCHAR",
    "quality_profile": "VARCHAR",
    "quality_intent": "VARCHAR",
    "verdict": "VARCHAR",  # pass | quarantined | not_gated (no gate ran)
    "failed_expectations": "VARCHAR[]",
    "metrics_json": "VARCHAR",
    **dict.fromkeys(METRIC_COLUMNS, "DOUBLE"),
    "routed_candidate": "VARCHAR",  # routed runs: the candidate the router chose (None: not routed)
    "routing_reason": "VARCHAR",  # best | explore | fallback (no candidate met the recipe's target)
    "routing_bucket": "VARCHAR",  # the image's feature bucket the router estimated in
    "escalated": "BOOLEAN",  # a second attempt on the next stronger candidate was made (or refused by the budget)
    "routing_json": "VARCHAR",  # the routing decision and the chain: every attempt's candidate, cost, verdict
    "rights_decision": "VARCHAR",  # go | needs_consent | refused (the rights check, before any edit)
    "rights_reasons": "VARCHAR[]",  # reason codes: ai_use_prohibited, no_model_release, consent_granted ...
    "rights_json": "VARCHAR",  # what the decision was based on: the source's rights metadata, faces, reasons
    "people_faces": "INTEGER",  # faces found (None: not looked for)
    "consent_decision": "VARCHAR",  # pending | approved | rejected
    "consent_by": "VARCHAR",
    "consent_at": "TIMESTAMPTZ",
    "consent_note": "VARCHAR",
    "review_decision": "VARCHAR",
    "reviewer": "VARCHAR",
    "reviewed_at": "TIMESTAMPTZ",
    "review_note": "VARCHAR",
    "edited_at": "TIMESTAMPTZ",
    "published_at": "TIMESTAMPTZ",
    "recorded_at": "TIMESTAMPTZ",
}

_SECRET_KEY = re.compile(
    r"secret|passw|api[-_]?key|authori[sz]|credential|signature|x[-_]key|access[-_]?key|session[-_]?token"
    r"|bearer|cookie|^token$|[-_]token$", re.I)
_SECRET_VALUE = re.compile(
    r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|\bsk-[A-Za-z0-9_-]{16,}|\bBearer\s+\S+|X-Amz-(Signature|Credential)=", re.I)
REDACTED = "[redacted]"


# -- scrubbing ---------------------------------------------------------------------------------------
def scrub_uri(uri: str | None) -> str | None:
    """A URI without user info, query or fragment (presigned URLs carry signatures there)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    if not parts.scheme or parts.scheme == "file":
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(value: Any) -> Any:
    """``value`` with secret-looking keys dropped and secret-looking strings redacted (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return REDACTED
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN / infinity
    return value


def _json(value: Any) -> str | None:
    return None if value in (None, [], {}) else json.dumps(scrub(value), sort_keys=True, default=str)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _utc_iso(value: Any) -> str | None:
    """ISO 8601 in UTC (naive values are UTC), or None."""
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


# -- pieces of a record ------------------------------------------------------------------------------
def _recipe_facts(manifest_recipe: Mapping[str, Any], recipe: Any, cache: dict[str, Any]) -> dict[str, Any]:
    """Name, fingerprint and the step prompts of the recipe that ran.

    Prompts come from the manifest when it carries them, else from ``recipe`` or the recipe file,
    but only when its fingerprint matches: a recipe edited since the run has other prompts.
    """
    fingerprint = manifest_recipe.get("fingerprint")
    facts = {"recipe_name": manifest_recipe.get("name"), "recipe_fingerprint": fingerprint,
             "recipe_origin": scrub_uri(manifest_recipe.get("origin")), "recipe_version": None,
             "step_ids": None, "prompts_json": None}
    steps = manifest_recipe.get("steps")
    if steps:
        return {**facts, "step_ids": [s["id"] for s in steps], "prompts_json": _json(list(steps))}
    loaded = _load_recipe(manifest_recipe, recipe, cache)
    if loaded is None:
        return facts
    steps = [{"id": s.id, "prompt": s.prompt, "op": s.local.op, "mask": s.mask} for s in loaded.steps]
    return {**facts, "recipe_version": loaded.version, "step_ids": [s["id"] for s in steps],
            "prompts_json": _json(steps)}


def _load_recipe(manifest_recipe: Mapping[str, Any], recipe: Any, cache: dict[str, Any]) -> Any:
    fingerprint = manifest_recipe.get("fingerprint")
    if recipe is not None and getattr(recipe, "fingerprint", None) == fingerprint:
        return recipe
    if fingerprint not in cache:
        from airflow_image_catalog.recipes import RecipeError, load_recipe
        from airflow_image_catalog.storage import StorageError

        try:
            loaded = load_recipe(manifest_recipe.get("ref") or manifest_recipe.get("origin") or manifest_recipe["name"])
        except (RecipeError, StorageError, OSError, KeyError) as exc:
            log.warning("audit: cannot load recipe %s for its prompts: %s", manifest_recipe.get("name"), exc)
            loaded = None
        if loaded is not None and loaded.fingerprint != fingerprint:
            log.warning("audit: recipe %s changed since the run (fingerprint %s, ran %s): prompts not recorded",
                        manifest_recipe.get("name"), loaded.fingerprint, fingerprint)
            loaded = None
        cache[fingerprint] = loaded
    return cache[fingerprint]


def _usage_facts(usage: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals of the usage that produced the image (for a cache hit: the original calls' usage)."""
    tokens = [_tokens(record) for record in usage]
    return {
        "tokens_in": sum(t[0] for t in tokens),
        "tokens_out": sum(t[1] for t in tokens),
        "credits": math.fsum(_number(r.get("credits")) or 0.0 for r in usage),
        "images_generated": int(sum(_number(r.get("images")) or 0 for r in usage)),
    }


def _cost_facts(entries: Sequence[Any]) -> dict[str, Any]:
    """What this run paid for one image, from its ledger entries (the truth)."""
    estimates = [e.estimated_usd for e in entries if e.estimated_usd is not None]
    return {
        "paid_calls": len(entries),
        "cost_usd": round(math.fsum(e.usd for e in entries), 9),
        "estimated_usd": round(math.fsum(estimates), 9) if estimates else None,
        "cost_basis": ",".join(sorted({e.basis for e in entries})) or None,
    }


def _task_facts(edit: Any, record: Any, entries: Sequence[Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """Which task instance edited the image.

    Taken from ``record.edited_by`` or the manifest's ``task`` when those fields exist (see the
    integration notes), else from the image's ledger entries (paid calls only), else unknown.
    """
    facts = dict(getattr(edit, "task", None) or {})
    facts.update(getattr(record, "edited_by", None) or {})
    for entry in entries:
        for name in ("dag_id", "task_id", "map_index"):
            if facts.get(name) is None:
                facts[name] = getattr(entry, name, None)
    return {"dag_id": facts.get("dag_id") or run.get("dag_id"), "task_id": facts.get("task_id"),
            "map_index": facts.get("map_index"), "try_number": facts.get("try_number")}


def _gate_facts(gate: Mapping[str, Any] | None, verdict: Mapping[str, Any]) -> dict[str, Any]:
    metrics = verdict.get("metrics") or {}
    return {
        "quality_profile": gate.get("profile") if gate else None,
        "quality_intent": (gate.get("intent") if gate else None) or metrics.get("intent"),
        "verdict": verdict.get("verdict") or ("not_gated" if gate is None else None),
        "failed_expectations": [f.get("label") or f.get("metric") for f in verdict.get("failed", [])],
        "metrics_json": _json(metrics),
        **{name: _number(metrics.get(name)) for name in METRIC_COLUMNS},
    }


def routing_facts(record: Any, entries: Sequence[Any], verdict: str | None) -> dict[str, Any]:
    """The routing columns of a routed image: the router's choice, and the chain with each attempt's cost
    (its ledger entries, matched by cache key) and verdict (the last one's is the gate's final word)."""
    from airflow_image_catalog.pipeline.routing.summary import priced_chain

    routing = getattr(record, "routing", None)
    if not routing:
        return {}
    chain = priced_chain(routing, entries, verdict)
    last = chain["attempts"][-1] if chain["attempts"] else {}
    return {"routed_candidate": routing.get("candidate"), "routing_reason": routing.get("reason"),
            "routing_bucket": routing.get("bucket"), "escalated": bool(routing.get("escalated")),
            "routing_json": _json(chain), **({"backend": last["backend"], "model": last["model"]}
                                             if last.get("backend") else {})}


def rights_facts(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The audit columns of an image's rights decision (an item of ``runs/<run>/rights/decision.json``)."""
    if not item:
        return {}
    consent = item.get("consent") or {}
    people = item.get("people")
    return {
        "rights_decision": item.get("decision"),
        "rights_reasons": [r["code"] for r in item.get("reasons", [])] or None,
        "rights_json": _json({"rights": item.get("rights"), "people": people, "policy": item.get("policy"),
                              "reasons": item.get("reasons"), "notes": item.get("notes")}),
        "people_faces": people.get("faces") if people else None,
        "consent_decision": consent.get("decision"), "consent_by": consent.get("by"),
        "consent_at": consent.get("at"), "consent_note": scrub(consent.get("note")),
    }


#: the audit event of each rights decision the rights check makes (``go`` images are recorded when published)
RIGHTS_CHECK_EVENTS = {"refused": "refused", "needs_consent": "consent_requested"}
#: ... and of each decision a consent reviewer's answer makes
CONSENT_EVENTS = {"go": "consent_granted", "refused": "consent_denied"}


def rights_records(items: Iterable[Mapping[str, Any]], *, run: Mapping[str, Any],
                   events: Mapping[str, str] = RIGHTS_CHECK_EVENTS) -> list[dict[str, Any]]:
    """Records for images the rights check stopped or a consent reviewer decided: ``events`` maps an
    item's ``decision`` to its event (decisions not in it get no record)."""
    recorded_at = datetime.now(UTC)
    rows = []
    for item in items:
        kind = events.get(str(item.get("decision")))
        if kind is None:
            continue
        rows.append(_finish({
            "schema_version": AUDIT_SCHEMA_VERSION, "event": kind, "image_id": item["image_id"],
            "run_key": run.get("run_key") or safe_run_key(str(run.get("run_id") or "")), "run_id": run.get("run_id"),
            "dag_id": run.get("dag_id"), "task_id": run.get("task_id"), "recorded_by": _writer(run),
            "source_uri": scrub_uri(item.get("source_uri")), "source_sha256": item.get("source_sha256"),
            "operators_version": __version__, "paid_calls": 0, "cost_usd": 0.0,  # refused for free
            **rights_facts(item), "recorded_at": recorded_at,
        }))
    return rows


def _writer(run: Mapping[str, Any]) -> str:
    return "/".join(str(run.get(name) or "-") for name in ("dag_id", "run_id", "task_id"))


def _finish(row: Mapping[str, Any]) -> dict[str, Any]:
    """Exactly :data:`COLUMNS`, timestamps in UTC ISO form."""
    out = {name: row.get(name) for name in COLUMNS}
    for name, kind in COLUMNS.items():
        if kind == "TIMESTAMPTZ":
            out[name] = _utc_iso(out[name])
    return out


# -- public ------------------------------------------------------------------------------------------
def audit_records(
    results: Iterable[Any],
    *,
    published: Sequence[Mapping[str, Any]],
    quarantined: Sequence[Mapping[str, Any]],
    ledger_entries: Iterable[Any],
    run: Mapping[str, Any],
    recipe: Any = None,
    published_at: datetime | str | None = None,
    rights: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One record per image of ``published`` and ``quarantined`` (as :func:`publish_run` builds them).

    :param results: the run's :class:`~airflow_image_catalog.pipeline.publishing.publish.ChunkResult` s (edit + gate manifests).
    :param ledger_entries: the run's :class:`~airflow_image_catalog.pipeline.costing.ledger.LedgerEntry` s (others are ignored).
    :param run: ``dag_id``, ``run_id``, ``task_id`` (the publish task), optionally ``run_key``.
    :param recipe: the :class:`~airflow_image_catalog.recipes.Recipe` that ran, if at hand (else loaded by origin).
    :param published_at: when the publish step ran (default: now).
    :param rights: image id -> its rights decision (``pipeline.rights.check.rights_by_image``).
    """
    recorded_at = datetime.now(UTC)
    published_at = published_at or recorded_at
    outcome = {e["image_id"]: ("published", e) for e in published}
    outcome.update({e["image_id"]: ("quarantined", e) for e in quarantined})
    entries_of: dict[tuple[str, str], list[Any]] = {}
    for entry in ledger_entries:
        entries_of.setdefault((entry.run_key, entry.image_id), []).append(entry)
    recipes: dict[str, Any] = {}
    rows = []
    for result in results:
        edit, verdicts = result.edit, result.verdicts()
        run_key = run.get("run_key") or edit.run_key or safe_run_key(run.get("run_id") or "")
        recipe_facts = _recipe_facts(edit.recipe, recipe, recipes)
        for record in edit.items:
            if record.image_id not in outcome:
                continue
            event, entry = outcome[record.image_id]
            entries = entries_of.get((run_key, record.image_id), [])
            rows.append(_finish({
                "schema_version": AUDIT_SCHEMA_VERSION, "event": event, "image_id": record.image_id,
                "run_key": run_key, "run_id": run.get("run_id"), "chunk_index": edit.chunk_index,
                "recorded_by": _writer(run), **_task_facts(edit, record, entries, run),
                "source_uri": scrub_uri(record.source_uri), "source_sha256": record.source_sha256,
                "source_bytes": record.source_bytes, "source_etag": record.source_etag,
                "output_uri": scrub_uri(record.output_uri), "output_sha256": record.output_sha256,
                "output_format": record.output_format, "width": record.width, "height": record.height,
                "published_uri": scrub_uri(entry.get("published_uri")),
                "published_sha256": entry.get("sha256") if event == "published" else None,
                "provenance_json": _json(entry.get("provenance")),
                "quarantine_uri": scrub_uri(entry.get("quarantine_uri")),
                **recipe_facts, "backend": edit.backend, "model": edit.model, "operators_version": __version__,
                **_usage_facts(record.usage), **_cost_facts(entries),
                "cache_hit": bool(record.cache_hit), "cache_key": record.cache_key, "attempts": record.attempts,
                "edit_seconds": record.seconds, "rounds": len(record.rounds),
                "drift_decisions": [r.get("decision") for r in record.rounds] or None,
                "rounds_json": _json(record.rounds), "preparation_json": _json(record.preparation),
                **_gate_facts(result.gate, verdicts.get(record.image_id, {})),
                **routing_facts(record, entries, verdicts.get(record.image_id, {}).get("verdict")),
                **rights_facts((rights or {}).get(record.image_id)),
                "edited_at": record.finished_at,
                "published_at": published_at if event == "published" else None,
                "recorded_at": recorded_at,
            }))
    missing = set(outcome) - {row["image_id"] for row in rows}
    if missing:
        log.warning("audit: %d published/quarantined images not in the manifests: %s", len(missing), sorted(missing))
    return rows


def review_records(
    decided: Sequence[Mapping[str, Any]],
    originals: Sequence[Mapping[str, Any]],
    *,
    run: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Records for reviewer decisions: the image's ``quarantined`` record with the decision on it.

    :param decided: quarantine records with their ``review`` filled (``apply_review`` writes them:
        ``run_key``, ``image_id`` and ``review`` {decision, by, at, note, published_uri}).
    :param originals: the images' ``quarantined`` audit records (see :func:`~airflow_image_catalog.pipeline.publishing.audit.store.find_records`);
        a decision without one still gets a record, from the quarantine record's own facts.
    :param run: the review run's ``dag_id``, ``run_id``, ``task_id``.
    """
    by_key = {(o["run_key"], o["image_id"]): o for o in originals if o.get("event") == "quarantined"}
    recorded_at = datetime.now(UTC)
    rows = []
    for item in decided:
        review = item.get("review") or {}
        if review.get("decision") not in ("approved", "rejected"):
            continue
        base = by_key.get((item.get("run_key"), item["image_id"])) or {
            **{k: item.get(k) for k in ("image_id", "run_key", "source_uri", "source_sha256", "output_uri",
                                         "output_sha256", "width", "height", "quarantine_uri", "verdict")},
            "quality_profile": item.get("profile"), "metrics_json": _json(item.get("metrics")),
            "failed_expectations": [f.get("label") for f in item.get("failed", [])],
            "schema_version": AUDIT_SCHEMA_VERSION,
        }
        approved = review["decision"] == "approved"
        rows.append(_finish({
            **base, "event": review["decision"], "recorded_by": _writer(run),
            "review_decision": review["decision"], "reviewer": review.get("by"), "reviewed_at": review.get("at"),
            "review_note": scrub(review.get("note")),
            "published_uri": scrub_uri(review.get("published_uri")) if approved else None,
            "published_sha256": review.get("published_sha256") if approved else None,
            "published_at": review.get("at") if approved else None, "recorded_at": recorded_at,
            # the money was spent by the edit run: a review costs nothing, so run-cost sums stay right
            "paid_calls": 0, "cost_usd": 0.0, "estimated_usd": None,
        }))
    return rows
