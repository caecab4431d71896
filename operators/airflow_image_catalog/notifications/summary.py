"""The alert message: what failed, counts, cost, pass rate and links, with secrets scrubbed.

Pure: the caller reads the run report, cost decision and gate manifests and passes them in,
so the message can be tested (and rebuilt) without storage or Airflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_image_catalog.pipeline.costing.ledger import possibly_billed_note

KINDS = ("task_failure", "budget_breach", "gate_failure", "low_pass_rate", "run_failed", "deadline_missed")
COUNT_KEYS = ("found", "changed", "edited", "failed", "quarantined", "published")  # found: in the source
MAX_ERROR_CHARS = 1500
_MASK = "***"

# Order matters: specific shapes first, then the generic "name: value" form.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{_MASK}@"),  # user:password@host
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{_MASK}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), f"sk-{_MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), _MASK),  # JWT
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), _MASK),  # AWS access key id
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)\S+"), rf"\1{_MASK}"),
    (re.compile(r"(?i)([?&#](?:[a-z_-]*(?:key|token|secret|sig|signature|password|auth|code))=)[^&\s\"']+"),
     rf"\1{_MASK}"),
    (re.compile(r"(?i)((?:x-key|x-api-key|api[_-]?key|authorization|password|passwd|secret|client_secret"
                r"|access[_-]?token|refresh[_-]?token|webhook_secret)[\"']?\s*[:=]\s*[\"']?)"
                r"(?!\*\*\*)[^\s\"',;&}]+"), rf"\1{_MASK}"),
)


def scrub(text: Any) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``.

    Exception messages quote requests and URLs; an alert goes to chat rooms and inboxes,
    so keys, tokens and signed-URL parameters must never reach it.
    """
    out = str(text)
    for pattern, replacement in _SECRET_PATTERNS:
        out = pattern.sub(replacement, out)
    return out


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a context value that is an object in a task callback and a dict in a deadline one."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def run_identity(context: Mapping[str, Any]) -> dict[str, Any]:
    """dag_id, run_id, task_id, map_index, try_number and the log URL from a callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    map_index = _get(ti, "map_index")
    try:
        log_url = _get(ti, "log_url")
    except Exception:  # a property that needs config or a DB; a link is not worth failing the alert
        log_url = None
    return {
        "dag_id": _get(dag, "dag_id") or _get(dag_run, "dag_id") or _get(ti, "dag_id") or context.get("dag_id"),
        "run_id": (context.get("run_id") or _get(dag_run, "run_id") or _get(dag_run, "dag_run_id")
                   or _get(ti, "run_id")),
        "task_id": _get(ti, "task_id") or _get(context.get("task"), "task_id"),
        "map_index": None if map_index in (None, -1) else map_index,
        "try_number": _get(ti, "try_number"),
        "log_url": log_url,
    }


def workspace_of(context: Mapping[str, Any]) -> str | None:
    """The run's workspace: the DAG run's params (task callbacks) or its conf (deadline callbacks)."""
    params = context.get("params") or {}
    workspace = _get(params, "workspace")
    if not workspace:
        workspace = _get(_get(context.get("dag_run"), "conf") or {}, "workspace")
    return str(workspace) if workspace else None


def _usd(value: Any) -> str:
    return "-" if value is None else f"${float(value):.2f}"


def _pass_rate(report: Mapping | None, gates: list[Mapping] | None) -> float | None:
    quality = (report or {}).get("quality") or {}
    if quality.get("pass_rate") is not None:
        return float(quality["pass_rate"])
    passed = sum((g.get("counts") or {}).get("pass", 0) for g in gates or [])
    gated = passed + sum((g.get("counts") or {}).get("quarantined", 0) for g in gates or [])
    return round(passed / gated, 4) if gated else None


def _counts(report: Mapping | None, gates: list[Mapping] | None) -> dict[str, int] | None:
    if report and report.get("counts"):
        return {k: int(report["counts"].get(k, 0)) for k in COUNT_KEYS}
    if gates:  # the run has not reached publish: what the gates saw so far
        totals = {"pass": 0, "quarantined": 0, "not_gated": 0}
        for gate in gates:
            for key in totals:
                totals[key] += (gate.get("counts") or {}).get(key, 0)
        gated = sum(totals.values())  # the gates see the changed images only; the source's count is publish's
        return {"found": gated, "changed": gated, "edited": totals["pass"] + totals["quarantined"],
                "failed": totals["not_gated"],
                "quarantined": totals["quarantined"], "published": 0}
    return None


def _what_failed(kind: str, identity: Mapping, exception: Any, decision: Mapping | None,
                 gates: list[Mapping] | None, context: Mapping) -> str:
    if kind == "deadline_missed":
        deadline = _get(context.get("deadline"), "deadline_time")
        return f"the run was not done by its deadline{f' ({deadline})' if deadline else ''}"
    if kind == "budget_breach" and decision and decision.get("message"):
        reason = f"cost check ({decision.get('action')}, policy {decision.get('policy')}): {decision['message']}"
    elif exception is not None:
        reason = f"{type(exception).__name__}: {exception}" if isinstance(exception, BaseException) else str(exception)
    else:
        reason = "the task failed (no exception recorded)"
    if kind in ("gate_failure", "low_pass_rate") and gates:
        failing = [g for g in gates if g.get("pass_rate") is not None]
        worst = min(failing, key=lambda g: g["pass_rate"], default=None)
        if worst is not None:
            reason += f"; lowest chunk pass rate {worst['pass_rate']:.0%} (chunk {worst.get('chunk_index')})"
    return scrub(reason)[:MAX_ERROR_CHARS]


def alert_summary(kind: str, context_like: Mapping[str, Any], report: Mapping | None = None,
                  decision: Mapping | None = None, *, gates: list[Mapping] | None = None,
                  possibly_billed: list[Mapping] | None = None) -> dict[str, Any]:
    """The alert for ``kind`` as ``{kind, title, text, fields, links}`` (JSON-ready).

    :param kind: one of :data:`KINDS`.
    :param context_like: the callback's Airflow context (or a dict with the same keys).
    :param report: ``runs/<run>/report.json`` if publish wrote it.
    :param decision: ``runs/<run>/cost/decision.json`` if the cost check wrote it.
    :param gates: the gate manifests ``runs/<run>/quality/chunk-*.json`` found so far.
    :param possibly_billed: the run's possibly billed attempts from the ledger (the report's, when it exists,
        are the same).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(KINDS)}")
    identity = run_identity(context_like)
    decision = decision or ((report or {}).get("cost") or {}).get("decision")
    cost = (report or {}).get("cost") or {}
    estimate = (decision or {}).get("estimate_usd")
    actual = cost.get("actual_usd")
    possibly = list(cost.get("possibly_billed") or possibly_billed or [])
    pass_rate = _pass_rate(report, gates)
    min_pass_rate = _get(context_like.get("params") or {}, "min_pass_rate")
    counts = _counts(report, gates)
    what = _what_failed(kind, identity, context_like.get("exception"), decision, gates, context_like)

    links: dict[str, str] = {}
    workspace = workspace_of(context_like)
    if workspace and identity["run_id"]:
        from airflow_image_catalog.workspace.layout import WorkspaceLayout

        run = WorkspaceLayout(workspace).run_for({"run_id": identity["run_id"]})
        links["report"] = (report or {}).get("report_html") or run.report_html
        links["run_state"] = run.root
    if identity["log_url"]:
        links["task_log"] = str(identity["log_url"])

    task = identity["task_id"] or "-"
    if identity["map_index"] is not None:
        task += f"[{identity['map_index']}]"
    label = kind.replace("_", " ")
    title = scrub(f"[{identity['dag_id'] or 'dag'}] {label}: {task} (run {identity['run_id'] or '-'})")
    lines = [title, "", f"what failed: {what}",
             f"dag {identity['dag_id']}, run {identity['run_id']}, task {task}, try {identity['try_number'] or '-'}"]
    if counts:
        lines.append("images: " + " / ".join(f"{k} {counts[k]}" for k in COUNT_KEYS))
    if estimate is not None or actual is not None:
        budget = (decision or {}).get("available_usd")
        lines.append(f"cost: estimate {_usd(estimate)}, actual {_usd(actual)}"
                     + (f", available {_usd(budget)}" if budget is not None else ""))
    note = possibly_billed_note(possibly)
    if note:
        lines.append(f"cost: {note}")
    if pass_rate is not None:
        lines.append(f"quality: pass rate {pass_rate:.0%}"
                     + (f" (minimum {float(min_pass_rate):.0%})" if min_pass_rate not in (None, "") else ""))
    lines += [f"{name}: {uri}" for name, uri in links.items()]
    return {
        "kind": kind,
        "title": title,
        "text": scrub("\n".join(lines)),
        "fields": {
            **{k: identity[k] for k in ("dag_id", "run_id", "task_id", "map_index", "try_number")},
            "what_failed": what,
            "counts": counts,
            "cost": {"estimate_usd": estimate, "actual_usd": actual,
                     "possibly_billed_usd": round(sum(float(c.get("usd") or 0) for c in possibly), 6),
                     "possibly_billed_calls": len(possibly),
                     "action": (decision or {}).get("action"), "policy": (decision or {}).get("policy")},
            "pass_rate": pass_rate,
            "min_pass_rate": None if min_pass_rate in (None, "") else float(min_pass_rate),
        },
        "links": links,
    }
