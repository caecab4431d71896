"""``python -m airflow_image_catalog.pipeline.publishing.audit``: answer audit questions from the audit store.

    trace <published path | URI | sha256 | image id>   where did this image come from
    run-cost <run id | run key>                        what did the run cost, per model and recipe
    by-model <model> [--since 7d | 2026-11-19]         which images did the model produce
    sql "<query>"                                      read-only DuckDB SQL over the view ``audit``

Exit codes, each with its own message on stderr (and, with ``--json``, an ``{"error": ...}`` object
on stdout): 0 found, 1 not found (no matching records), 2 usage error (bad arguments, bad SQL or a
statement that is not a read-only query), 3 workspace missing (no such directory or bucket),
4 unsupported scheme (the workspace is neither ``file://`` nor ``s3://``), 5 storage error (the
store is unreachable, access denied, no credentials). With ``--json`` stdout carries only JSON:
whatever logs while the command runs (Airflow does, when it builds the S3 client) goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_image_catalog.config.locations import catalog_location
from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.publishing.audit.store import (
    ReadOnlyViolation,
    WorkspaceMissing,
    check_workspace,
    open_audit,
    query,
    read_only_query,
)
from airflow_image_catalog.storage import StorageError, UnsupportedScheme, normalize_uri
from airflow_image_catalog.workspace.manifest import safe_run_key

FOUND, NOT_FOUND, USAGE, NO_WORKSPACE, UNSUPPORTED_SCHEME, STORAGE_FAILURE = 0, 1, 2, 3, 4, 5
#: exit code -> the ``kind`` of the ``--json`` error object
ERROR_KINDS = {USAGE: "usage", NO_WORKSPACE: "workspace_missing", UNSUPPORTED_SCHEME: "unsupported_scheme",
               STORAGE_FAILURE: "storage_error"}
_HEX = re.compile(r"[0-9a-fA-F]{8,64}")
_AGO = re.compile(r"(\d+)\s*([hdw])")
_AGO_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class UsageError(CatalogError, ValueError):
    """A bad argument: exit code 2."""


def default_workspace() -> str:
    """As the DAGs: ``$CATALOG_HOME/work``."""
    return catalog_location("work")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d`` / ``12h`` / ``2w`` ago, or an ISO date or date-time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return now - timedelta(**{_AGO_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        moment = datetime.fromisoformat(text) if "T" in text or " " in text.strip() else \
            datetime.combine(date.fromisoformat(text), datetime.min.time())
    except ValueError as exc:
        raise UsageError(f"expected 7d, 12h, 2w or a date like 2026-11-19, got {text!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# -- formatting ----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A record for ``--json``: timestamps as ISO text, ``*_json`` columns as their objects."""
    out = {}
    for key, value in row.items():
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(value) if value else None
        else:
            out[key] = _plain(value)
    return out


def _when(value: Any) -> str:
    return "-" if value is None else str(_plain(value))


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.6f}"


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    names = list(rows[0])
    cells = [[("" if r[n] is None else str(_plain(r[n]))) for n in names] for r in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def format_trail(row: dict[str, Any]) -> str:
    """One record as the readable trail: where the image came from and what was done to it."""
    lines = [f"{row['image_id']}  [{row['event']}]"]
    if row.get("published_uri"):
        lines.append(f"  published    {row['published_uri']}  at {_when(row.get('published_at'))}")
        lines.append(f"               sha256 {row.get('published_sha256')}")
    if row.get("quarantine_uri"):
        lines.append(f"  quarantine   {row['quarantine_uri']}")
    lines += [
        f"  source       {row['source_uri']}",
        f"               sha256 {row['source_sha256']}  ({row.get('source_bytes') or '?'} bytes)",
        f"  output       {row['output_uri']}",
        f"               sha256 {row['output_sha256']}  {row.get('width')}x{row.get('height')} "
        f"{row.get('output_format') or ''}".rstrip(),
        f"  recipe       {row['recipe_name']}  (fingerprint {row.get('recipe_fingerprint')})",
    ]
    for step in json.loads(row["prompts_json"]) if row.get("prompts_json") else []:
        lines.append(f"    step {step['id']}: {step.get('prompt')!r}")
    lines += [
        f"  backend      {row['backend']} / {row['model']}  (operators {row.get('operators_version')})",
        f"  cost         {_usd(row.get('cost_usd'))}  ({row.get('paid_calls') or 0} paid calls"
        f"{', cache hit' if row.get('cache_hit') else ''}; tokens in {row.get('tokens_in') or 0}"
        f" / out {row.get('tokens_out') or 0}, credits {row.get('credits') or 0:g})",
    ]
    if row.get("rounds"):
        lines.append(f"  rounds       {row['rounds']}: {', '.join(row.get('drift_decisions') or [])}")
    quality = f"  quality      {row.get('verdict')}"
    if row.get("quality_profile"):
        quality += f"  (profile {row['quality_profile']}, intent {row.get('quality_intent')})"
    lines.append(quality)
    if row.get("failed_expectations"):
        lines.append(f"    failed: {'; '.join(row['failed_expectations'])}")
    metrics = json.loads(row["metrics_json"]) if row.get("metrics_json") else {}
    shown = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if shown:
        lines.append("    metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items())))
    if row.get("review_decision"):
        note = f'  "{row["review_note"]}"' if row.get("review_note") else ""
        lines.append(f"  review       {row['review_decision']} by {row.get('reviewer')} at "
                     f"{_when(row.get('reviewed_at'))}{note}")
    map_index = "-" if row.get("map_index") is None else row["map_index"]
    try_number = "-" if row.get("try_number") is None else row["try_number"]
    lines += [
        f"  run          dag {row.get('dag_id')}  run {row.get('run_id')}  (key {row['run_key']})",
        f"  task         {row.get('task_id')}  map_index {map_index}  try {try_number}  chunk {row.get('chunk_index')}",
        f"  times        edited {_when(row.get('edited_at'))}  recorded {_when(row.get('recorded_at'))}"
        f"  by {row.get('recorded_by')}",
    ]
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------------------
def trace(con, target: str) -> list[dict[str, Any]]:
    """Records of one image: by image id, a source/output sha256 (or an 8+ hex prefix), or a
    published / quarantined / output / source path or URI (or the end of a published path)."""
    uri = normalize_uri(target) if "://" in target or target.startswith(("/", "~", ".")) else target
    prefix = target.lower() if _HEX.fullmatch(target) else None
    return query(con, """
        SELECT * FROM audit
        WHERE image_id = $t OR $p IN (published_sha256, output_sha256, source_sha256)
           OR ($p IS NOT NULL AND (starts_with(published_sha256, $p) OR starts_with(output_sha256, $p)
                                   OR starts_with(source_sha256, $p)))
           OR $u IN (published_uri, quarantine_uri, output_uri, source_uri)
           OR ends_with(published_uri, '/' || $t)
        ORDER BY recorded_at, event""", {"t": target, "p": prefix, "u": uri})


def _groups(con, where: str, params: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return query(con, f"""
        SELECT {key} AS name, count(DISTINCT image_id) AS images, sum(paid_calls)::BIGINT AS paid_calls,
               round(sum(cost_usd), 9) AS cost_usd
        FROM audit WHERE {where} AND event IN ('published', 'quarantined') GROUP BY ALL ORDER BY name""", params)


def run_cost(con, run: str, workspace: str) -> dict[str, Any] | None:
    """The run's cost from its audit records, per model and recipe, checked against the ledger."""
    where = "(run_id = $r OR run_key = $r OR run_key = $k)"
    params = {"r": run, "k": safe_run_key(run)}
    total = query(con, f"""
        SELECT list(DISTINCT run_key) AS run_keys, list(DISTINCT run_id) AS run_ids,
               count(DISTINCT image_id) AS images,
               count(DISTINCT image_id) FILTER (event IN ('published', 'approved')) AS published,
               count(DISTINCT image_id) FILTER (event = 'quarantined') AS quarantined,
               count(DISTINCT image_id) FILTER (event = 'rejected') AS rejected,
               count(*) FILTER (event IN ('published', 'quarantined') AND cache_hit) AS cache_hits,
               coalesce(sum(paid_calls) FILTER (event IN ('published', 'quarantined')), 0)::BIGINT AS paid_calls,
               coalesce(sum(tokens_in) FILTER (event IN ('published', 'quarantined')), 0)::BIGINT AS tokens_in,
               coalesce(sum(tokens_out) FILTER (event IN ('published', 'quarantined')), 0)::BIGINT AS tokens_out,
               round(coalesce(sum(cost_usd) FILTER (event IN ('published', 'quarantined')), 0), 9) AS cost_usd
        FROM audit WHERE {where}""", params)[0]
    if not total["images"]:
        return None
    total["cost_per_published_image_usd"] = (round(total["cost_usd"] / total["published"], 9)
                                             if total["published"] else None)
    total["by_model"] = _groups(con, where, params, "backend || '/' || model")
    total["by_recipe"] = _groups(con, where, params, "recipe_name")
    total["ledger"] = _ledger_total(workspace, total["run_keys"], total["cost_usd"])
    return total


def _ledger_total(workspace: str, run_keys: Sequence[str], attributed: float) -> dict[str, Any]:
    """What the ledger booked for the run: the truth, including calls for images that were
    neither published nor quarantined (failed edits), which have no audit record."""
    ledger = Ledger(workspace)
    usd = round(math.fsum(ledger.run_spend(key) for key in run_keys), 9)
    return {"usd": usd, "not_in_audit_usd": round(usd - attributed, 9)}


def by_model(con, model: str, since: datetime, until: datetime | None) -> list[dict[str, Any]]:
    """The images ``model`` (a model, ``backend``, ``backend/model`` or a model prefix) made in the
    window (by edit time), each with its latest event and where it is published or quarantined."""
    return query(con, """
        SELECT coalesce(edited_at, recorded_at) AS edited_at, event, image_id, run_key, backend, model,
               coalesce(published_uri, quarantine_uri) AS uri,
               coalesce(published_sha256, output_sha256) AS sha256, cost_usd
        FROM audit
        WHERE (lower(model) = lower($m) OR lower(backend) = lower($m) OR lower(backend || '/' || model) = lower($m)
               OR starts_with(lower(model), lower($m)))
          AND coalesce(edited_at, recorded_at) >= $since
          AND ($until IS NULL OR coalesce(edited_at, recorded_at) < $until)
        QUALIFY row_number() OVER (PARTITION BY run_key, image_id ORDER BY recorded_at DESC) = 1
        ORDER BY edited_at, image_id""", {"m": model, "since": since, "until": until})


# -- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=argparse.SUPPRESS,
                        help="workspace URI (file:// or s3://); default $CATALOG_HOME/work")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument("--cache-dir", default=argparse.SUPPRESS,
                        help="where s3:// audit files are mirrored (default: a temporary directory)")
    parser = argparse.ArgumentParser(prog="image-catalog-audit", parents=[common],
                                     description="Audit trail of published and quarantined images.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("trace", parents=[common], help="where did this image come from").add_argument(
        "target", help="published path or URI, sha256 (or an 8+ hex prefix), or image id")
    commands.add_parser("run-cost", parents=[common], help="what did a run cost").add_argument(
        "run", help="run id or run key")
    models = commands.add_parser("by-model", parents=[common], help="images a model produced")
    models.add_argument("model", help="model, backend, backend/model, or a model prefix")
    models.add_argument("--since", default="7d", help="7d, 12h, 2w, or a date / date-time (default 7d)")
    models.add_argument("--until", default=None, help="a date / date-time (default: now)")
    commands.add_parser("sql", parents=[common], help="DuckDB SQL over the view `audit`").add_argument("query")
    return parser


def main(argv: Sequence[str] | None = None, out: Any = None, *, isolate_stdout: bool = False) -> int:
    """Run one command; the answer goes to ``out`` (default stdout), everything else to stderr.

    ``isolate_stdout`` (the ``python -m`` entry point): while the command runs, file descriptor 1
    points at stderr, so nothing but the answer reaches stdout (a library's print, a log handler
    that kept the original stream, a C extension); ``--help`` and argument errors come first, as usual.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on errors, 0 for --help
        return int(exc.code or 0)
    with _answer_stream(out, isolate_stdout) as answer:
        return _main(args, answer)


@contextlib.contextmanager
def _answer_stream(out: Any, isolate: bool):
    if not isolate:
        answer = out or sys.stdout  # the stdout the caller gave us, before the redirect
        with contextlib.redirect_stdout(sys.stderr):  # a library that prints while the command runs
            yield answer
        return
    import os

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    answer = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield answer
    finally:
        answer.flush()
        answer.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _main(args: argparse.Namespace, out: Any) -> int:
    workspace = getattr(args, "workspace", None) or default_workspace()
    as_json = getattr(args, "json", False)
    try:
        check_workspace(workspace)
        con = open_audit(workspace, cache_dir=getattr(args, "cache_dir", None))
        found, text, payload = _run(args, con, workspace)
    except Exception as exc:
        code, message = _failure(exc, workspace)
        print(f"error: {message}", file=sys.stderr)
        if as_json:
            print(json.dumps({"error": {"code": code, "kind": ERROR_KINDS[code], "message": message}}), file=out)
        return code
    if as_json:
        print(json.dumps(payload, indent=2, default=_plain), file=out)
        if not found:
            print(text, file=sys.stderr)
    else:
        print(text, file=out)
    return FOUND if found else NOT_FOUND


def console() -> int:
    """The ``image-catalog-audit`` console script (and ``python -m``): stdout carries only the answer."""
    return main(isolate_stdout=True)


def _failure(exc: Exception, workspace: str) -> tuple[int, str]:
    """(exit code, message) of a failed command; an unexpected error is re-raised."""
    import duckdb

    if isinstance(exc, UsageError | ReadOnlyViolation | duckdb.Error):  # a DuckDB error in user SQL is usage
        return USAGE, str(exc)
    if isinstance(exc, UnsupportedScheme):
        return UNSUPPORTED_SCHEME, (f"unsupported workspace scheme {exc.scheme!r} in {workspace}: the audit store "
                                    f"is read from {', '.join(exc.known)} (file:// paths, s3:// buckets)")
    if isinstance(exc, WorkspaceMissing):
        return NO_WORKSPACE, f"{exc} (give --workspace, or set CATALOG_HOME)"
    if isinstance(exc, StorageError):
        return STORAGE_FAILURE, f"cannot read the audit store of {workspace}: {exc}"
    raise exc


def _run(args: argparse.Namespace, con, workspace: str) -> tuple[bool, str, Any]:
    """(found, text, JSON payload) of one command."""
    if args.command == "trace":
        rows = trace(con, args.target)
        text = "\n\n".join(format_trail(r) for r in rows) or f"no audit record for {args.target!r}"
        return bool(rows), text, [_jsonable(r) for r in rows]
    if args.command == "run-cost":
        cost = run_cost(con, args.run, workspace)
        return cost is not None, _cost_text(cost) if cost else f"no audit record for run {args.run!r}", cost
    if args.command == "by-model":
        since = parse_since(args.since)
        until = parse_since(args.until) if args.until else None
        rows = by_model(con, args.model, since, until)
        window = f"{since.isoformat()} .. {until.isoformat() if until else 'now'}"
        published = sum(r["event"] in ("published", "approved") for r in rows)
        text = f"{len(rows)} image(s) by {args.model} edited {window} ({published} published)\n{_table(rows)}"
        return bool(rows), text, rows
    rows = read_only_query(con, args.query)
    return bool(rows), _table(rows), rows


def _cost_text(cost: dict[str, Any]) -> str:
    lines = [
        f"run {', '.join(cost['run_ids'])}  (key {', '.join(cost['run_keys'])})",
        f"  images       {cost['images']}: {cost['published']} published, {cost['quarantined']} quarantined"
        f" ({cost['rejected']} rejected on review), {cost['cache_hits']} cache hits",
        f"  cost         {_usd(cost['cost_usd'])} for {cost['paid_calls']} paid calls"
        f" (tokens in {cost['tokens_in']} / out {cost['tokens_out']})",
        f"  per image    {_usd(cost['cost_per_published_image_usd'])} per published image",
        f"  ledger       {_usd(cost['ledger']['usd'])} booked"
        f" ({_usd(cost['ledger']['not_in_audit_usd'])} for images without an audit record: failed edits)",
    ]
    for title, key in (("by model", "by_model"), ("by recipe", "by_recipe")):
        lines.append(f"  {title}")
        lines += [f"    {g['name']}: {_usd(g['cost_usd'])}, {g['images']} images, {g['paid_calls']} paid calls"
                  for g in cost[key]]
    return "\n".join(lines)
