"""The run report as one self-contained HTML page: counts, charts, before/after, reasons.

Thumbnails are embedded as data URIs so the page opens anywhere (a browser, an
e-mail attachment, an S3 console) without access to the storage it came from.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

from airflow_image_catalog.pipeline.costing.ledger import possibly_billed_note
from airflow_image_catalog.pipeline.quality.reasons import reason_text
from airflow_image_catalog.pipeline.routing.summary import ordered_candidates
from airflow_image_catalog.storage import read_bytes

if TYPE_CHECKING:
    from airflow_image_catalog.pipeline.publishing.publish import ChunkResult

THUMB_PX = 180
MAX_THUMB_ROWS = 300  # beyond this the table lists rows without pictures: the page stays small
SHOWN_METRICS = ("product_coverage", "bg_off_share", "canvas_marks", "product_marks", "product_fill", "detail_ratio",
                 "ssim_preserved", "delta_e_preserved", "seam_score", "sharpness_ratio", "phash_distance",
                 "blockiness", "jpeg_quality", "ocr_similarity")
esc = html.escape
BAD_CLASS = ' class="bad"'  # a failed metric, highlighted


#: the engine's decode limit: a failed upload past it (a bomb) gets no thumbnail rather than ~0.5 GB decoded
THUMB_MAX_PIXELS = 60_000_000


def thumbnail(uri: str | None) -> str:
    """A small JPEG data URI of the image at ``uri`` ('' when it cannot be read)."""
    if not uri:
        return ""
    from PIL import Image


    try:
        with Image.open(io.BytesIO(read_bytes(uri))) as image:
            image.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
            if image.width * image.height > THUMB_MAX_PIXELS:  # a decompression bomb: no thumbnail, no decode
                return ""
            image = image.convert("RGB")
            image.thumbnail((THUMB_PX, THUMB_PX))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=80)
    except Exception:  # a broken upload has no thumbnail; its row still shows the reason
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(uri: str | None) -> str:
    data = thumbnail(uri)
    return f'<img src="{data}" alt="">' if data else '<span class="none">-</span>'


def bar_chart(values: dict[str, int], *, colours: dict[str, str] | None = None, width: int = 420) -> str:
    """A horizontal SVG bar chart, no JavaScript, no external assets."""
    if not values:
        return ""
    peak = max(values.values()) or 1
    rows = []
    for i, (label, value) in enumerate(values.items()):
        length = int((width - 230) * value / peak)  # room for the count after the bar
        colour = (colours or {}).get(label, "#4a78b5")
        rows.append(
            f'<text x="0" y="{i * 24 + 15}" font-size="12">{esc(label[:28])}</text>'
            f'<rect x="180" y="{i * 24 + 3}" width="{length}" height="16" fill="{colour}"></rect>'
            f'<text x="{184 + length}" y="{i * 24 + 15}" font-size="12">{value}</text>'
        )
    return f'<svg width="{width}" height="{len(values) * 24 + 4}" role="img">{"".join(rows)}</svg>'


def shown_metrics(metrics: dict[str, Any], failed_metrics: set[str], float_format: str = ".3f",
                  ) -> list[tuple[str, str, bool]]:
    """The metrics a reviewer sees (report and UI alike): ``(name, formatted value, failed)``."""
    return [(name, format(value, float_format) if isinstance(value, float) else str(value), name in failed_metrics)
            for name in SHOWN_METRICS if (value := metrics.get(name)) is not None]


def _metric_cell(metrics: dict[str, Any], failed_metrics: set[str]) -> str:
    return "<br>".join(f"<span{BAD_CLASS if bad else ''}>{esc(name)}={esc(shown)}</span>"
                       for name, shown, bad in shown_metrics(metrics, failed_metrics))


def found_phrase(counts: dict[str, Any]) -> str:
    """What the source held and what the run took on, as the report, the demo and the UI say it:
    ``18 found, 1 new or changed (13 unchanged since published, 4 refused before); 1 waits for consent``.
    A report from before ``changed`` existed counted only what the edit took on, as ``found``."""
    changed = counts.get("changed", counts.get("found"))
    skipped = [f"{n} {label}" for label, n in (("unchanged since published", counts.get("unchanged")),
                                               ("refused before", counts.get("refused_before"))) if n]
    waiting, refused = counts.get("waiting_for_consent"), counts.get("rights_refused")
    held = ([f"{waiting} {'waits' if waiting == 1 else 'wait'} for consent"] if waiting else []) + \
        ([f"{refused} refused by the rights check"] if refused else [])
    return (f"{counts.get('found')} found, {changed} new or changed" + (f" ({', '.join(skipped)})" if skipped else "")
            + (f"; {', '.join(held)}" if held else ""))


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def cost_section(cost: dict[str, Any] | None) -> str:
    """The cost check's decision, estimate vs actual, and a table + chart per model."""
    if not cost:
        return ""
    decision = cost.get("decision") or {}
    lines = []
    if decision:
        lines.append(f"<p>cost check: <b>{esc(decision['action'])}</b> (policy {esc(decision['policy'])}): "
                     f"{esc(decision['message'])}</p>")
        skipped = decision.get("skipped_budget") or []
        if skipped:
            lines.append(f"<p>skipped for budget, not sent ({len(skipped)}): "
                         f"{esc(', '.join(skipped))}</p>")
        for name, variant in (decision.get("variants") or {}).items():
            lines.append(f"<p>the same run on <b>{esc(name)}</b> would cost {_money(variant['usd'])} "
                         f"(band {_money(variant['low_usd'])}-{_money(variant['high_usd'])})</p>")
    recon = cost.get("reconciliation") or {}
    warn = ' class="bad"' if recon.get("warning") else ""
    reconciled = f" &middot; <span{warn}>{esc(recon['message'])}</span>" if recon else ""
    lines.append(f"<p>actual {_money(cost['actual_usd'])} in {cost['paid_calls']} paid calls &middot; "
                 f"{cost['cache_hits']} cache hits (free) &middot; per published image "
                 f"{_money(cost.get('cost_per_published_image_usd'))}{reconciled}</p>")
    note = possibly_billed_note(cost.get("possibly_billed") or [])
    if note:
        lines.append(f'<p class="bad">{esc(note)}</p>')
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{g['calls']}</td><td>{g['images']}</td><td>{g['tokens_in']}</td>"
        f"<td>{g['tokens_out']}</td><td>{g['credits']}</td><td>{_money(g['usd'])}</td></tr>"
        for name, g in (cost.get("by_model") or {}).items())
    if rows:
        lines.append("<table><tr><th>provider/model</th><th>calls</th><th>images</th><th>tokens in</th>"
                     f"<th>tokens out</th><th>credits</th><th>cost</th></tr>{rows}</table>")
        cents = {name: round(g["usd"] * 100) for name, g in cost["by_model"].items()}
        lines.append(f"<p>cost per model, cents</p>{bar_chart(cents)}")
    return "<h3>Cost</h3>" + "".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _chain(routing: dict[str, Any] | None) -> str:
    """A routed image's attempts, e.g. ``lite ✗ → pro ✓`` (empty: not routed)."""
    if not routing:
        return ""
    marks = {"pass": " &#10003;", "quarantined": " &#10007;"}
    links = " &rarr; ".join(f"{esc(a['candidate'])}{marks.get(a.get('verdict') or '', '')}"
                            + ("" if a.get("status") in ("edited", None) else f" ({esc(a['status'])})")
                            for a in routing.get("attempts") or [])
    return f"<br><small>{links}{' (explore)' if routing.get('reason') == 'explore' else ''}</small>"


def routing_section(routing: dict[str, Any] | None) -> str:
    """A routed run: the routing table (each candidate's estimate, images, passes, cost), escalations, expected
    vs actual cost per passing image, and the saving against the fixed candidate and the strongest."""
    if not routing:
        return ""
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{_share(row.get('pass_probability'))}</td><td>{row['routed']}</td>"
        f"<td>{row['explored']}</td><td>{row['attempts']}</td><td>{row['passed']}</td><td>{row['quarantined']}</td>"
        f"<td>{_money(row['usd'])}</td><td>{_money(row.get('fixed_usd_per_pass'))}</td></tr>"
        for name, row in ordered_candidates(routing))
    escalations = routing["escalations"]
    saving = routing.get("saving_vs_fixed")
    return (
        f"<h3>Routing</h3><p>target pass rate <b>{_share(routing.get('target'))}</b>, exploration "
        f"{_share(routing.get('explore_share'))} of images &middot; {routing['images']} images routed, "
        f"{routing['passed']} passed ({_share(routing.get('pass_rate'))})</p>"
        "<table><tr><th>candidate (weakest first)</th><th>estimated pass</th><th>routed</th><th>explored</th>"
        "<th>edits</th><th>passed</th><th>quarantined</th><th>cost</th><th>fixed: expected per pass</th></tr>"
        f"{rows}</table>"
        f"<p>escalations: {escalations['attempted']} re-edited on the next stronger candidate, {escalations['passed']} "
        f"passed, {escalations['quarantined']} quarantined, {escalations['not_sent']} not sent (budget or error) "
        f"&middot; {_money(escalations['usd'])}</p>"
        f"<p>cost per passing image: expected {_money(routing.get('expected_usd_per_pass'))}, actual "
        f"<b>{_money(routing.get('actual_usd_per_pass'))}</b> &middot; fixed candidate "
        f"{esc(str(routing.get('fixed_candidate')))} expected {_money(routing.get('fixed_usd_per_pass'))}"
        f"{f' (saving {saving:.0%})' if saving is not None else ''} &middot; always the strongest "
        f"({esc(str(routing.get('strongest')))}) expected {_money(routing.get('strongest_usd_per_pass'))}"
        + (f" (saving {routing['saving_vs_strongest']:.0%})" if routing.get("saving_vs_strongest") is not None else "")
        + "</p>")


def rights_section(rights: dict[str, Any] | None) -> str:
    """The rights check's line: decisions, reasons, and which images were refused or wait for consent."""
    if not rights:
        return ""
    counts = rights["counts"]
    reasons = ", ".join(f"{code} {n}" for code, n in (rights.get("reasons") or {}).items())
    held = "".join(f"<li>{esc(label)}: {esc(', '.join(ids))}</li>" for label, ids in (
        ("refused (never sent to a backend)", rights.get("refused") or []),
        ("waiting for consent (catalog_consent)", rights.get("waiting_for_consent") or [])) if ids)
    return (f"<p>rights check (policy <b>{esc(str(rights.get('policy_name')))}</b>): {counts['go']} go &middot; "
            f"{counts['needs_consent']} wait for consent &middot; {counts['refused']} refused"
            f"{' (' + esc(reasons) + ')' if reasons else ''}; faces found in {rights.get('people_found', 0)} of "
            f"{rights.get('people_checked', 0)} images looked at</p>{'<ul>' + held + '</ul>' if held else ''}")


def outcome_section(outcome: dict[str, Any] | None) -> str:
    """The run's state under its publishing policy, why it failed, and each chunk's status."""
    if not outcome:
        return ""
    failed = outcome.get("status") == "failed"
    reasons = "".join(f"<li>{esc(reason)}</li>" for reason in outcome.get("reasons") or [])
    chunks = "".join(f"<tr class='{'' if c['status'] == 'ok' else 'failed'}'><td>{c['chunk_index']}</td>"
                     f"<td>{c['images']}</td><td>{esc(c['status'])}</td><td>{esc(c.get('reason') or '')}</td></tr>"
                     for c in outcome.get("chunks") or [])
    held = f" &middot; {outcome['held']} edited images held back" if outcome.get("held") else ""
    table = ("<table><tr><th>chunk</th><th>images</th><th>status</th><th>reason</th></tr>" + chunks + "</table>"
             if chunks and failed else "")
    state = "<span class='bad'>run failed</span>" if failed else "run succeeded"
    return (f"<h3>State: {state}</h3><p>publishing policy <b>{esc(str(outcome.get('policy')))}</b>{held}</p>"
            f"{f'<ul>{reasons}</ul>' if reasons else ''}{table}")


def render_html(report: dict[str, Any], results: list[ChunkResult]) -> str:
    counts = report["counts"]
    quality = report.get("quality") or {}
    published = {p["image_id"]: p["published_uri"] for p in report["published"]}
    held = {h["image_id"]: h["reason"] for h in report.get("held") or []}
    rows = []
    for result in results:
        verdicts = result.verdicts()
        for record in result.edit.items:
            verdict = verdicts.get(record.image_id, {})
            failed = verdict.get("failed", [])
            status = verdict.get("verdict", record.status) if record.status == "edited" else record.status
            if record.image_id in held:
                status = "held"
            css = "failed" if record.status != "edited" else status
            with_pictures = len(rows) < MAX_THUMB_ROWS
            after_uri = published.get(record.image_id) or verdict.get("quarantine_uri") or record.output_uri
            reasons = "".join(f"<li><b>{esc(f.get('category', 'check'))}</b>: {esc(reason_text(f))}</li>" for f in failed)
            detail = esc(record.error) if record.error else (f"<ul>{reasons}</ul>" if reasons else "")
            if record.image_id in held:
                detail = esc(held[record.image_id])
            rows.append(
                f"<tr class='{esc(css)}'><td>{esc(record.image_id)}</td><td>{esc(status)}"
                f"{' (cache)' if record.cache_hit else ''}{_chain(record.routing)}</td>"
                f"<td>{_img(record.source_uri) if with_pictures else ''}</td>"
                f"<td>{_img(after_uri) if with_pictures and record.output_uri else ''}</td>"
                f"<td class='metrics'>{_metric_cell(verdict.get('metrics', {}), {f['metric'] for f in failed})}</td>"
                f"<td>{detail}</td></tr>"
            )
    outcome = {k: counts[k] for k in ("published", "quarantined", "failed")}
    colours = {"published": "#3c9a5f", "quarantined": "#d99a29", "failed": "#c8483f"}
    docs = "".join(f'<li><a href="{esc(uri)}">{esc(uri.rsplit("/data_docs/", 1)[-1])}</a></li>'
                   for uri in quality.get("data_docs", []))
    recipe = report["recipe"]["name"] if report["recipe"] else "-"
    pass_rate = quality.get("pass_rate")
    quality_line = (
        f"<p>quality profile <b>{esc(', '.join(quality['profiles']))}</b> ({esc(', '.join(quality['intents']))} "
        f"intent): pass rate <b>{pass_rate:.0%}</b></p>" if quality and pass_rate is not None else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>catalog run {esc(str(report.get('run_id')))}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}} td{{padding:4px 8px;vertical-align:top;border-bottom:1px solid #eee}}
img{{max-width:{THUMB_PX}px;max-height:{THUMB_PX}px;border:1px solid #ccc}} tr.failed td{{background:#fde8e8}}
tr.quarantined td{{background:#fff4dc}} .bad{{color:#b00;font-weight:bold}} .metrics{{font-size:12px}}
.charts{{display:flex;gap:3em}} .none{{color:#999}}</style></head>
<body><h1>Catalog run {esc(str(report.get('run_id')))}</h1>
<p>DAG <b>{esc(str(report.get('dag_id')))}</b>, recipe <b>{esc(recipe)}</b>, backend {esc(', '.join(report['backends']))}</p>
<p>{esc(found_phrase(counts))} &middot; edited {counts['edited']} &middot; failed {counts['failed']}
&middot; quarantined {counts['quarantined']} &middot; published {counts['published']}
&middot; edit time {report['edit_seconds']} s</p>
{outcome_section(report.get("outcome"))}
{quality_line}
{rights_section(report.get("rights"))}
{cost_section(report.get("cost"))}
{routing_section(report.get("routing"))}
<div class="charts"><div><h3>Outcome</h3>{bar_chart(outcome, colours=colours)}</div>
<div><h3>Failed expectations</h3>{bar_chart(quality.get('failed_expectations', {})) or '<p>none</p>'}</div></div>
{f'<h3>Great Expectations Data Docs</h3><ul>{docs}</ul>' if docs else ''}
<table><tr><th>image</th><th>status</th><th>before</th><th>after</th><th>metrics</th><th>reason</th></tr>
{''.join(rows)}
</table></body></html>
"""
