"""Server-rendered HTML of the plugin's pages: plain functions from data to a string, no JavaScript
build, no external assets (the pages also render inside the Airflow UI's iframe)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_image_catalog.pipeline.publishing.report import (
    BAD_CLASS,
    found_phrase,
    outcome_section,
    shown_metrics,
)
from airflow_image_catalog.plugin.files import StorageRoots, file_href, run_source_href

esc = html.escape


@dataclass(frozen=True)
class Links:
    """URLs the pages point at: the plugin's own routes (under ``prefix``), files under the storage
    roots, and the Airflow UI's run / task pages (under ``ui_base``)."""

    prefix: str
    roots: StorageRoots
    ui_base: str = ""

    def page(self, path: str = "") -> str:
        return f"{self.prefix}/{path}"

    def file(self, uri: str | None) -> str | None:
        return file_href(self.roots, uri, self.prefix)

    def before(self, record: dict[str, Any], run_key: str | None = None) -> str | None:
        """An image before its edit: from a configured source root, else as its run (``run_key``, else the
        record's) read it."""
        return self.file(record.get("source_uri")) or run_source_href(run_key or record.get("run_key"),
                                                                       record.get("image_id"), self.prefix)

    def run_page(self, run_key: str, anchor: str = "") -> str:
        return f"{self.prefix}/runs/{quote(run_key)}" + (f"#{anchor}" if anchor else "")

    def airflow_run(self, dag_id: str | None, run_id: str | None) -> str | None:
        if not dag_id or not run_id:
            return None
        return f"{self.ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"

    def airflow_task(self, dag_id: str | None, run_id: str | None, task_id: str | None,
                     map_index: int | None = None) -> str | None:
        run = self.airflow_run(dag_id, run_id)
        if run is None or not task_id:
            return None
        mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
        return f"{run}/tasks/{quote(task_id, safe='')}{mapped}"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2937;background:#fff;font-size:14px}
header{background:#017cee;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:center}
header b{font-size:16px} header a{color:#e6f2ff;text-decoration:none;padding:4px 8px;border-radius:4px}
header a.on{background:#fff;color:#017cee;font-weight:600} header .who{margin-left:auto;font-size:12px}
main{padding:16px 20px} h2{font-size:18px;margin:18px 0 8px} h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%} th{text-align:left;background:#f3f4f6;font-weight:600}
td,th{padding:5px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top} .num{text-align:right}
.bad{color:#b91c1c;font-weight:600} .ok{color:#15803d} .warn{color:#b45309} .muted{color:#6b7280}
.cards{display:flex;flex-direction:column;gap:14px} .card{border:1px solid #e5e7eb;border-radius:8px;padding:12px}
.pair{display:flex;gap:12px} .pair figure{margin:0} .pair img{width:220px;height:220px;object-fit:contain;
border:1px solid #d1d5db;background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
figcaption{font-size:12px;color:#6b7280;text-align:center} .row{display:flex;gap:18px;flex-wrap:wrap}
.metrics td{padding:2px 8px;font-size:12px} button{padding:6px 14px;border-radius:5px;border:1px solid #9ca3af;
background:#fff;cursor:pointer;font-size:13px} button.approve{background:#15803d;color:#fff;border-color:#15803d}
button.reject{background:#b91c1c;color:#fff;border-color:#b91c1c} input[type=text]{padding:6px;width:260px}
.flash{background:#ecfdf5;border:1px solid #10b981;padding:8px 12px;border-radius:6px;margin-bottom:10px}
.flash.error{background:#fef2f2;border-color:#ef4444} .bar{background:#e5e7eb;border-radius:4px;height:14px;width:260px}
.bar span{display:block;height:14px;border-radius:4px} .kv td:first-child{color:#6b7280;width:150px}
code{font-size:12px;word-break:break-all}
"""

NAV = (("", "Catalog runs"), ("review", "Review queue"), ("audit", "Audit search"))


def layout(title: str, body: str, links: Links, *, active: str, user: str | None = None) -> str:
    """The frame every page shares: tabs for the three views, who is signed in."""
    tabs = "".join(f'<a class="{"on" if key == active else ""}" href="{esc(links.page(key))}">{esc(label)}</a>'
                   for key, label in NAV)
    who = f'<span class="who">signed in as {esc(user)}</span>' if user else ""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<style>{CSS}</style></head><body><header><b>Image catalog</b>{tabs}{who}</header>'
            f"<main>{body}</main></body></html>")


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _a(href: str | None, text: str, *, new_tab: bool = False, top: bool = False) -> str:
    """A link; ``new_tab`` for files, ``top`` for Airflow UI pages, which must replace the whole window
    rather than load a second Airflow UI inside the frame the plugin's pages are embedded in."""
    if not href:
        return esc(text)
    target = ' target="_blank" rel="noopener"' if new_tab else ' target="_top"' if top else ""
    return f'<a href="{esc(href)}"{target}>{esc(text)}</a>'


def _n(value: Any) -> str:
    return "-" if value is None else esc(str(value))


def budget_chart(budget: dict[str, Any], width: int = 420) -> str:
    """Two gauges (today, this month) and an SVG column chart of the month's spend per day."""
    def gauge(label: str, spent: float, limit: float | None, share: float | None) -> str:
        pct = min(share or 0.0, 1.0) * 100
        colour = "#b91c1c" if (share or 0) >= 1 else "#d97706" if (share or 0) >= 0.8 else "#16a34a"
        text = f"{_usd(spent)} of {_usd(limit)} ({share:.0%})" if limit else f"{_usd(spent)} (no budget set)"
        return (f'<div><div>{esc(label)}: <b>{esc(text)}</b></div>'
                f'<div class="bar"><span style="width:{pct:.1f}%;background:{colour}"></span></div></div>')

    days = budget.get("by_day") or {}
    peak = max(days.values(), default=0.0) or 1.0
    step = width / max(len(days), 1)
    columns = []
    for i, (day, usd) in enumerate(days.items()):
        height = int(70 * usd / peak)
        columns.append(f'<rect x="{i * step + 1:.1f}" y="{80 - height}" width="{max(step - 2, 1):.1f}" '
                       f'height="{max(height, 1)}" fill="{"#017cee" if usd else "#d1d5db"}">'
                       f"<title>{esc(day)}: {esc(_usd(usd))}</title></rect>")
    chart = (f'<svg width="{width}" height="96" role="img" aria-label="spend per day this month">'
             f'{"".join(columns)}<text x="0" y="94" font-size="10" fill="#6b7280">{esc(next(iter(days), ""))}</text>'
             f'<text x="{width}" y="94" font-size="10" fill="#6b7280" text-anchor="end">'
             f'{esc(budget.get("day", ""))}</text></svg>')
    return (f'<div class="row" id="budget">{gauge("today (UTC " + budget.get("day", "") + ")", budget["spent_day_usd"], budget.get("budget_day_usd"), budget.get("day_share"))}'
            f'{gauge("this month (" + budget.get("month", "") + ")", budget["spent_month_usd"], budget.get("budget_month_usd"), budget.get("month_share"))}'
            f'<div><div>spend per day, {esc(budget.get("month", ""))} (ledger)</div>{chart}</div></div>')


def catalog_page(runs: list[dict[str, Any]], budget: dict[str, Any], links: Links, *, user: str | None = None) -> str:
    """Recent catalog runs: images edited / passed / quarantined, estimate vs actual, report links."""
    rows = []
    for run in runs:
        docs = " ".join(_a(links.file(uri), f"chunk {n}", new_tab=True) for n, uri in enumerate(run["data_docs"]))
        rate = "-" if run["pass_rate"] is None else f"{run['pass_rate']:.0%}"
        rate_cls = "" if run["pass_rate"] is None else "ok" if run["pass_rate"] >= 0.8 else "bad"
        report = _a(links.file(run["report_html"]), "report", new_tab=True) if run["report_html"] else \
            '<span class="muted">no report yet</span>'
        state = run_state(run)
        rows.append(
            f'<tr data-run="{esc(run["run_key"])}"><td>{_a(links.run_page(run["run_key"]), run["run_id"] or run["run_key"])}'
            f'<div class="muted">{_n(run["recipe"])}</div></td><td>{state}</td><td>{_n(run["finished_at"])}</td>'
            f'<td class="num">{_n(run["found"])}</td><td class="num">{_n(run["changed"])}</td>'
            f'<td class="num">{_n(run["edited"])}</td>'
            f'<td class="num">{_n(run["passed"])}</td><td class="num">{_n(run["quarantined"])}</td>'
            f'<td class="num">{_n(run["published"])}</td><td class="num">{_n(run["failed"])}</td>'
            f'<td class="num {rate_cls}">{rate}</td>'
            f'<td class="num">{_usd(run["estimate_usd"])} / {_usd(run["actual_usd"])}{routing_cell(run.get("routing"))}</td>'
            f"<td>{report}{'<br>Data Docs: ' + docs if docs else ''}</td></tr>")
    table = ("<table><tr><th>run</th><th>state</th><th>finished (UTC)</th><th class=num>found</th>"
             "<th class=num>new or changed</th><th class=num>edited</th>"
             "<th class=num>passed</th><th class=num>quarantined</th><th class=num>published</th>"
             "<th class=num>failed</th><th class=num>pass rate</th><th class=num>estimate / actual</th>"
             f"<th>report</th></tr>{''.join(rows)}</table>" if rows else
             '<p class="muted">No catalog runs in this workspace yet: trigger <b>catalog_refresh</b>.</p>')
    body = (f"<h2>Budget</h2>{budget_chart(budget)}<h2>Recent catalog runs</h2>{table}"
            f'<p class="muted">workspace <code>{esc(links.roots.roots["work"])}</code></p>')
    return layout("Image catalog", body, links, active="", user=user)


def _saving(value: float | None, against: str | None) -> str:
    """`` · 34% below pro`` (a saving) or `` · 5% above standard`` (dearer); empty when unknown."""
    if value is None:
        return ""
    return f" &middot; {abs(value):.0%} {'below' if value >= 0 else 'above'} {esc(str(against))}"


def routing_cell(routing: dict[str, Any] | None) -> str:
    """A routed run's line under its cost: images per candidate, escalations, cost per passing image and the
    saving against the fixed candidate and against always the strongest (empty: the run was not routed)."""
    if not routing:
        return ""
    spread = ", ".join(f"{esc(name)} {n}" for name, n in routing["candidates"].items() if n)
    return (f'<div class="muted routing">routed: {spread} &middot; {_n(routing["escalated"])} escalated '
            f'({_n(routing["escalations_passed"])} passed) &middot; per passing image {_usd(routing["actual_usd_per_pass"])}'
            f' (expected {_usd(routing["expected_usd_per_pass"])})'
            f'{_saving(routing["saving_vs_fixed"], routing["fixed_candidate"])}'
            f'{_saving(routing["saving_vs_strongest"], routing["strongest"])}</div>')


def run_state(run: dict[str, Any]) -> str:
    """A run's state for the catalog page: failed (with why, on hover), succeeded, or no report yet."""
    if run["status"] == "failed":
        why = "; ".join(run["reasons"]) or "see the report"
        return f'<span class="bad" title="{esc(why)}">failed</span>'
    if run["status"]:
        return '<span class="ok">succeeded</span>'
    return '<span class="muted">running, or stopped before publish</span>'


def state_section(report: dict[str, Any]) -> str:
    """The run page's state: failed or succeeded, the publishing policy, why, and each chunk (the
    report's own section, so the page and the HTML report say the same)."""
    if not report.get("outcome"):
        return ('<section id="state"><h3>State</h3><p class="muted">no report yet: the run is running, or stopped '
                "before publish (see the run in Airflow)</p></section>")
    return f'<section id="state">{outcome_section(report["outcome"])}</section>'


def _failed_list(failed: list[dict[str, Any]]) -> str:
    from airflow_image_catalog.pipeline.quality.reasons import reason_text

    items = "".join(f"<li><b>{esc(str(f.get('category', 'check')))}</b>: {esc(reason_text(f))} "
                    f"<span class=\"muted\">({esc(str(f.get('label')))}, observed {esc(str(f.get('observed')))})</span>"
                    "</li>" for f in failed)
    return f"<ul>{items}</ul>" if items else '<span class="muted">none</span>'


def _metrics_table(metrics: dict[str, Any], failed: set[str]) -> str:
    rows = [f"<tr><td>{esc(name)}</td><td{BAD_CLASS if bad else ''}>{esc(shown)}</td></tr>"
            for name, shown, bad in shown_metrics(metrics, failed, ".4g")]
    return f'<table class="metrics">{"".join(rows)}</table>' if rows else ""


def run_page(detail: dict[str, Any], links: Links, *, user: str | None = None) -> str:
    """One run: cost (the cost task's part), edit (the edit tasks'), quality (the gate's), with anchors
    ``#cost``, ``#edit``, ``#quality`` the operators' extra links point at."""
    run, report, decision = detail["summary"], detail["report"], detail["decision"] or {}
    cost = report.get("cost") or {}
    full = _a(links.file(run["report_html"]), "full HTML run report", new_tab=True) if run["report_html"] else \
        "no report yet (the run has not published)"
    head = (f"<h2>Run {esc(run['run_id'] or run['run_key'])}</h2><p>{full} &middot; "
            f"{_a(links.airflow_run(run['dag_id'], run['run_id']), 'run in Airflow', top=True)} &middot; "
            f"{_a(links.page('audit') + '?q=' + quote(run['run_key']), 'audit records')}</p>")
    variants = "".join(f"<li>the same run on <b>{esc(name)}</b> would cost {_usd(v.get('usd'))}</li>"
                       for name, v in (decision.get("variants") or {}).items())
    by_model = "".join(f"<tr><td>{esc(name)}</td><td class=num>{g['calls']}</td><td class=num>{g['images']}</td>"
                       f"<td class=num>{_usd(g['usd'])}</td></tr>" for name, g in (cost.get("by_model") or {}).items())
    cost_html = (f'<section id="cost"><h3>Cost</h3><table class="kv">'
                 f"<tr><td>decision</td><td><b>{_n(decision.get('action'))}</b> (policy {_n(decision.get('policy'))}): "
                 f"{_n(decision.get('message'))}</td></tr>"
                 f"<tr><td>estimate</td><td>{_usd(decision.get('estimate_usd'))} (band {_usd(decision.get('low_usd'))}"
                 f" - {_usd(decision.get('high_usd'))})</td></tr>"
                 f"<tr><td>actual</td><td>{_usd(cost.get('actual_usd'))} in {_n(cost.get('paid_calls'))} paid calls, "
                 f"{_n(cost.get('cache_hits'))} cache hits</td></tr>"
                 f"<tr><td>reconciliation</td><td>{_n(run['reconciliation'])}</td></tr></table>"
                 f"{'<ul>' + variants + '</ul>' if variants else ''}"
                 f"{'<table><tr><th>provider/model</th><th class=num>calls</th><th class=num>images</th><th class=num>cost</th></tr>' + by_model + '</table>' if by_model else ''}"
                 "</section>")
    failures = "".join(f"<tr><td>{esc(f['image_id'])}</td><td>{esc(str(f.get('status')))}</td>"
                       f"<td>{esc(str(f.get('error') or ''))}</td></tr>" for f in report.get("failures") or [])
    edit_html = (f'<section id="edit"><h3>Edit</h3><p>{esc(found_phrase(run))} &middot; edited {_n(run["edited"])}'
                 f' &middot; failed {_n(run["failed"])} &middot; from the result cache {_n(run["cache_hits"])} '
                 f'&middot; backend {esc(", ".join(run["backends"]) or "-")}</p>'
                 f"{'<table><tr><th>image</th><th>status</th><th>reason</th></tr>' + failures + '</table>' if failures else ''}"
                 "</section>")
    expectations = "".join(f"<li>{esc(label)}: {count}</li>" for label, count in run["failed_expectations"].items())
    quarantined = "".join(
        f"<li>{esc(q['image_id'])}: {esc('; '.join(q.get('reasons') or q.get('failed') or []))} "
        f"{_a(links.file(q.get('quarantine_uri')), 'image', new_tab=True)}</li>" for q in report.get("quarantined") or [])
    docs = " ".join(_a(links.file(uri), f"chunk {n}", new_tab=True) for n, uri in enumerate(run["data_docs"]))
    rate = "-" if run["pass_rate"] is None else f"{run['pass_rate']:.0%}"
    quality_html = (f'<section id="quality"><h3>Quality gate</h3><p>profile {esc(", ".join(run["profiles"]) or "-")}'
                    f" &middot; passed {_n(run['passed'])} &middot; quarantined {_n(run['quarantined'])} &middot; "
                    f"pass rate <b>{rate}</b>{' &middot; GX Data Docs: ' + docs if docs else ''}</p>"
                    f"{'<p>failed expectations</p><ul>' + expectations + '</ul>' if expectations else ''}"
                    f"{'<p>quarantined (see the ' + _a(links.page('review'), 'review queue') + ')</p><ul>' + quarantined + '</ul>' if quarantined else ''}"
                    "</section>")
    return layout(f"Run {run['run_key']}", head + state_section(report) + cost_html + edit_html + quality_html, links,
                  active="", user=user)


def _pair(record: dict[str, Any], links: Links) -> str:
    before, after = links.before(record), links.file(record.get("quarantine_uri"))
    img = lambda href, label: (f'<figure><img src="{esc(href)}" alt="{esc(label)}" loading="lazy">'  # noqa: E731
                               f"<figcaption>{esc(label)}</figcaption></figure>" if href else
                               f'<figure><div class="muted">{esc(label)}: not under a served root</div></figure>')
    return f'<div class="pair">{img(before, "before")}{img(after, "after")}</div>'


def _review_card(record: dict[str, Any], links: Links, actions: str) -> str:
    failed = record.get("failed") or []
    return (f'<div class="card" data-image="{esc(record["image_id"])}" data-run="{esc(str(record.get("run_key")))}">'
            f'<div class="row">{_pair(record, links)}<div><h3>{esc(record["image_id"])}</h3>'
            f'<div class="muted">run {_a(links.run_page(str(record.get("run_key")), "quality"), str(record.get("run_key")))}'
            f" &middot; profile {_n(record.get('profile'))}</div><p>failed expectations</p>{_failed_list(failed)}"
            f"</div><div><p>metrics</p>{_metrics_table(record.get('metrics') or {}, {f.get('metric') for f in failed})}"
            f"</div></div>{actions}</div>")


def _consent_section(waiting: list[dict[str, Any]], links: Links) -> str:
    """The images the rights check holds back: why, the faces and rights it found; answered in the
    ``catalog_consent`` DAG's human-in-the-loop form (Airflow's "Required actions")."""
    from airflow_image_catalog.pipeline.rights.consent import why_waiting

    rows = []
    for record in waiting:
        why, found = why_waiting(record)
        faces = (record.get("people") or {}).get("faces")
        rows.append(f'<tr data-consent="{esc(record["image_id"])}"><td>{esc(record["image_id"])}</td><td>{esc(why)}</td>'
                    f"<td>{_n(faces)}</td><td>{esc(found)}</td><td>{_n(record.get('requested_at'))}</td>"
                    f"<td>{_a(links.before(record, record.get('requested_by_run')), 'source', new_tab=True)}</td></tr>")
    if not rows:
        return ""
    return (f"<h2>Waiting for consent ({len(rows)})</h2><p class=muted>Held back by the rights check before any "
            "edit; answer them by triggering the <b>catalog_consent</b> DAG (its Required actions form): an approval "
            "lets the next catalog_refresh edit the image, a rejection refuses it for good.</p>"
            "<table><tr><th>image</th><th>why</th><th>faces</th><th>rights found</th><th>asked</th><th></th></tr>"
            f"{''.join(rows)}</table>")


def review_page(queue: dict[str, list[dict[str, Any]]], waiting: list[dict[str, Any]], links: Links, *,
                user: str | None = None, flash: str = "", error: str = "") -> str:
    """Pending images with before / after, failed expectations and metrics; approve / reject.

    Images a waiting ``catalog_review`` run asked about are answered through that run (one form per
    run, its human-in-the-loop input); the others are decided one by one.
    """
    in_run = {uri: wait for wait in waiting for uri in wait["shown"]}
    parts = []
    if flash:
        parts.append(f'<div class="flash" id="flash">{esc(flash)}</div>')
    if error:
        parts.append(f'<div class="flash error" id="flash">{esc(error)}</div>')
    for wait in waiting:
        records = [r for r in queue["pending"] if r["record_uri"] in wait["shown"]]
        cards = "".join(_review_card(r, links, f'<label><input type="checkbox" name="approve_ids" '
                                               f'value="{esc(r["image_id"])}"> approve</label>') for r in records)
        parts.append(
            f'<h2>Waiting review run {_a(links.airflow_task(wait["dag_id"], wait["run_id"], wait["task_id"]), wait["run_id"], top=True)}</h2>'
            f'<form method="post" action="{esc(links.page("review/hitl"))}" class="cards">'
            f'<input type="hidden" name="dag_id" value="{esc(wait["dag_id"])}">'
            f'<input type="hidden" name="run_id" value="{esc(wait["run_id"])}">'
            f'<input type="hidden" name="task_id" value="{esc(wait["task_id"])}">'
            f'<p>This run waits for a decision on {len(wait["shown"])} image(s): ticked images are approved and '
            f"published, the others rejected (the run's human-in-the-loop answer).</p>{cards}"
            f'<div><input type="text" name="note" placeholder="note (kept in the audit record)"> '
            f'<button class="approve" type="submit">Submit decision to the run</button></div></form>')
    single = [r for r in queue["pending"] if r["record_uri"] not in in_run]
    cards = []
    for record in single:
        target = links.page(f"review/{quote(str(record.get('run_key')))}/{quote(record['image_id'])}")
        actions = (f'<form method="post" action="{esc(target)}"><input type="text" name="note" '
                   f'placeholder="note (kept in the audit record)"> <button class="approve" name="decision" '
                   f'value="approve" type="submit">Approve</button> <button class="reject" name="decision" '
                   f'value="reject" type="submit">Reject</button></form>')
        cards.append(_review_card(record, links, actions))
    parts.append(f"<h2>Quarantined, waiting for a decision ({len(single)})</h2>")
    parts.append(f'<div class="cards">{"".join(cards)}</div>' if cards else '<p class="muted">Nothing waits.</p>')
    parts.append(_consent_section(queue.get("consent") or [], links))
    decided = "".join(
        f'<tr data-image="{esc(r["image_id"])}"><td>{esc(r["image_id"])}</td><td>{esc(str(r.get("run_key")))}</td>'
        f'<td class="{"ok" if r["review"].get("decision") == "approved" else "bad"}">{esc(str(r["review"].get("decision")))}</td>'
        f"<td>{_n(r['review'].get('by'))}</td><td>{_n(r['review'].get('at'))}</td><td>{_n(r['review'].get('note'))}</td>"
        f"<td>{_a(links.file(r['review'].get('published_uri')), 'published file', new_tab=True) if r['review'].get('published_uri') else ''}</td></tr>"
        for r in queue["decided"])
    if decided:
        parts.append("<h2>Recent decisions</h2><table><tr><th>image</th><th>run</th><th>decision</th><th>by</th>"
                     f"<th>at</th><th>note</th><th></th></tr>{decided}</table>")
    return layout("Review queue", "".join(parts), links, active="review", user=user)


def _trail(row: dict[str, Any], links: Links, run_link: Callable[[str], str]) -> str:
    prompts = json.loads(row["prompts_json"]) if row.get("prompts_json") else []
    metrics = json.loads(row["metrics_json"]) if row.get("metrics_json") else {}
    steps = "".join(f"<li><b>{esc(str(p.get('id')))}</b>: {esc(str(p.get('prompt') or ''))}</li>" for p in prompts)
    failed = {f for f in (row.get("failed_expectations") or [])}
    kv = [
        ("published", f"{_a(links.file(row.get('published_uri')), str(row.get('published_uri') or '-'), new_tab=True)}"
                      f"<br><code>sha256 {_n(row.get('published_sha256'))}</code>"),
        ("source", f"{_a(links.before(row), str(row.get('source_uri')), new_tab=True)}"
                   f"<br><code>sha256 {_n(row.get('source_sha256'))}</code>"),
        ("output", f"<code>{_n(row.get('output_uri'))}</code><br><code>sha256 {_n(row.get('output_sha256'))}</code>"),
        ("recipe", f"{_n(row.get('recipe_name'))} <span class=muted>(fingerprint {_n(row.get('recipe_fingerprint'))})</span>"
                   f"{'<ul>' + steps + '</ul>' if steps else ''}"),
        ("model", f"{_n(row.get('backend'))} / {_n(row.get('model'))}"),
        ("cost", f"{_usd(row.get('cost_usd'))} ({_n(row.get('paid_calls'))} paid calls"
                 f"{', cache hit' if row.get('cache_hit') else ''}; tokens {_n(row.get('tokens_in'))} in / "
                 f"{_n(row.get('tokens_out'))} out)"),
        ("quality", f"<b>{_n(row.get('verdict'))}</b> (profile {_n(row.get('quality_profile'))})"
                    f"{'<br>failed: ' + esc('; '.join(failed)) if failed else ''}"),
        ("metrics", ", ".join(f"{esc(k)}={v:.4g}" for k, v in sorted(metrics.items())
                              if isinstance(v, int | float) and not isinstance(v, bool)) or "-"),
    ]
    if row.get("review_decision"):
        kv.append(("review", f"{esc(row['review_decision'])} by {_n(row.get('reviewer'))} at "
                             f"{_n(row.get('reviewed_at'))} {esc(row.get('review_note') or '')}"))
    task = links.airflow_task(row.get("dag_id"), row.get("run_id"), row.get("task_id"), row.get("map_index"))
    kv.append(("run", f"{_a(links.airflow_run(row.get('dag_id'), row.get('run_id')), str(row.get('run_id')), top=True)} "
                      f"({_a(run_link(row['run_key']), 'run page')}) &middot; task "
                      f"{_a(task, str(row.get('task_id')), top=True)} map_index {_n(row.get('map_index'))} "
                      f"try {_n(row.get('try_number'))} &middot; recorded by <code>{_n(row.get('recorded_by'))}</code>"))
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in kv)
    return (f'<div class="card audit-row" data-event="{esc(str(row.get("event")))}" data-image="{esc(row["image_id"])}">'
            f"<h3>{esc(row['image_id'])} <span class=muted>[{esc(str(row.get('event')))}] "
            f"{_n(row.get('recorded_at'))}</span></h3><table class=kv>{rows}</table></div>")


def audit_page(result: dict[str, Any] | None, links: Links, *, user: str | None = None, error: str = "") -> str:
    """Search box (published path, sha256, SKU or run) and the trail of every matching record."""
    text = (result or {}).get("query", "")
    form = (f'<form method="get" action="{esc(links.page("audit"))}"><input type="text" name="q" '
            f'value="{esc(text)}" placeholder="published path, sha256, SKU (image id) or run id" style="width:460px"> '
            '<button type="submit">Search</button></form>')
    parts = [f"<h2>Audit search</h2>{form}"]
    if error:
        parts.append(f'<div class="flash error">{esc(error)}</div>')
    if result and text:
        rows = result["rows"]
        if rows:
            shown = f"{len(rows)} of {result['total']}" if result["total"] > len(rows) else str(len(rows))
            parts.append(f'<p id="found">{shown} record(s), matched by {esc(str(result["kind"]))}</p>')
            parts.append('<div class="cards">' + "".join(_trail(r, links, links.run_page) for r in rows) + "</div>")
        else:
            parts.append(f'<p id="found" class="muted">No audit record matches {esc(text)!s}.</p>')
    return layout("Audit search", "".join(parts), links, active="audit", user=user)
