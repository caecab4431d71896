"""Publish the edited images of a run and write its report.

Only images whose edit succeeded are published; each copy is checked against the
sha256 recorded at edit time, so a corrupted or swapped output is never published.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from typing import Any

from operators.manifest import STATUS_EDITED, EditManifest, sha256_hex
from operators.storage import (
    StorageError,
    join_uri,
    read_bytes,
    read_json,
    storage_for,
    write_bytes,
    write_json,
)

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1


def published_manifest_uri(workspace: str) -> str:
    return join_uri(workspace, "state", "published_manifest.json")


def publish_run(
    manifests: list[EditManifest], *, published_root: str, workspace: str, run_root: str, run: dict[str, Any]
) -> dict[str, Any]:
    """Copy edited outputs to ``published_root``, update the published manifest, write the report."""
    published, failures = [], []
    manifests = sorted(manifests, key=lambda m: m.chunk_index)
    for manifest in manifests:
        for record in manifest.items:
            if record.status != STATUS_EDITED:
                failures.append({"image_id": record.image_id, "source_uri": record.source_uri, "error": record.error})
                continue
            try:
                data = read_bytes(record.output_uri)
                if sha256_hex(data) != record.output_sha256:
                    raise StorageError(f"output {record.output_uri} does not match its recorded sha256")
                extension = record.output_uri.rsplit(".", 1)[-1]
                target = join_uri(published_root, f"{record.image_id}.{extension}")
                published.append({
                    "image_id": record.image_id,
                    "published_uri": write_bytes(target, data),
                    "sha256": record.output_sha256,
                    "source_uri": record.source_uri,
                    "source_sha256": record.source_sha256,
                    "width": record.width,
                    "height": record.height,
                })
            except StorageError as exc:
                failures.append({"image_id": record.image_id, "source_uri": record.source_uri, "error": str(exc)})
    _update_published_manifest(workspace, published, run)
    found = sum(len(m.items) for m in manifests)
    edited = sum(m.counts().get(STATUS_EDITED, 0) for m in manifests)
    report = {
        "kind": "run_report",
        "schema_version": REPORT_SCHEMA_VERSION,
        **run,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": manifests[0].recipe if manifests else None,
        "backends": sorted({f"{m.backend} ({m.model})" for m in manifests}),
        "published_root": published_root,
        "counts": {"found": found, "edited": edited, "failed": found - edited, "published": len(published)},
        "edit_seconds": round(sum(r.seconds or 0 for m in manifests for r in m.items), 3),
        "published": published,
        "failures": failures,
        "report_html": join_uri(run_root, "report.html"),
        "report_json": join_uri(run_root, "report.json"),
    }
    write_json(report["report_json"], report)
    write_bytes(report["report_html"], render_html(report, manifests).encode())
    return report


def _update_published_manifest(workspace: str, published: list[dict[str, Any]], run: dict[str, Any]) -> None:
    """The catalog's current state: image id -> what is published, from which source, by which run."""
    uri = published_manifest_uri(workspace)
    current = read_json(uri) if storage_for(uri).exists(uri) else {"images": {}}
    for entry in published:
        current["images"][entry["image_id"]] = {**entry, "run_id": run.get("run_id")}
    current["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json(uri, current)


def render_html(report: dict[str, Any], manifests: list[EditManifest]) -> str:
    """A self-contained page: counts, failures with reasons, and before/after thumbnails."""
    esc = html.escape
    counts = report["counts"]
    published = {p["image_id"]: p["published_uri"] for p in report["published"]}
    rows = []
    for manifest in manifests:
        for r in manifest.items:
            after = published.get(r.image_id)
            after_cell = f'<img src="{esc(after)}" loading="lazy">' if after else esc(r.error or r.status)
            rows.append(
                f"<tr class='{esc(r.status)}'><td>{esc(r.image_id)}</td><td>{esc(r.status)}</td>"
                f'<td><img src="{esc(r.source_uri)}" loading="lazy"></td><td>{after_cell}</td>'
                f"<td>{r.seconds if r.seconds is not None else ''}</td></tr>"
            )
    recipe = report["recipe"]["name"] if report["recipe"] else "-"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>catalog run {esc(str(report.get('run_id')))}</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:4px 8px;vertical-align:middle}}
img{{max-width:160px;max-height:160px;border:1px solid #ccc}} tr.failed td{{background:#fde8e8}}</style></head>
<body><h1>Catalog run {esc(str(report.get('run_id')))}</h1>
<p>DAG <b>{esc(str(report.get('dag_id')))}</b>, recipe <b>{esc(recipe)}</b>, backend {esc(', '.join(report['backends']))}</p>
<p>found {counts['found']} &middot; edited {counts['edited']} &middot; failed {counts['failed']}
&middot; published {counts['published']} &middot; edit time {report['edit_seconds']} s</p>
<table><tr><th>image</th><th>status</th><th>source</th><th>published / reason</th><th>seconds</th></tr>
{''.join(rows)}
</table></body></html>
"""
