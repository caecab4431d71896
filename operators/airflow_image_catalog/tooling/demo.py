"""``make demo`` and ``make run``: run catalog_refresh once through Airflow and print where everything is.

Runs ``airflow dags test catalog_refresh`` (real scheduler-less run against the
SQLite Airflow home inside the repo), then ``airflow dags test catalog_feed`` (no scheduler runs
the asset-triggered feed here, so the demo runs it by hand, as the README says), then reads the
run report and the feed they wrote. ``--conf`` passes the run's params
(``make run CONF='{"source": "/photos/new"}'``: your own folder, another recipe, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_image_catalog.config.locations import catalog_home as _catalog_home
from airflow_image_catalog.pipeline.publishing.report import found_phrase
from airflow_image_catalog.storage.local import uri_to_path
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout


def _path(uri: str) -> str:
    return unquote(urlsplit(uri).path) if uri.startswith("file://") else uri


def lineage_destination() -> str:
    """Where the OpenLineage transport the tasks use sends events, from Airflow's configuration
    (``[openlineage]``, as the provider reads it), not where the Makefile's default would put them."""
    from airflow.providers.openlineage import conf as ol_conf

    if ol_conf.is_disabled():
        return "none (OpenLineage is disabled: [openlineage] has no transport)"
    transport = ol_conf.transport()
    if not transport:
        where = ol_conf.config_conn_id() or ol_conf.config_path() or os.environ.get("OPENLINEAGE_URL")
        return f"as configured by {where}"
    return _describe(transport)


def _describe(transport: dict) -> str:
    kind = str(transport.get("type", "?"))
    if kind == "file":
        path = Path(str(transport.get("log_file_path", "")))
        if not transport.get("append", False):
            return f"{path}.<timestamp> (OpenLineage file transport, one file per event)"
        events = sum(1 for _ in path.open()) if path.is_file() else 0
        return f"{path} (OpenLineage file transport, {events} events so far)"
    if kind == "http":
        url = str(transport.get("url", "")).rstrip("/")
        return f"{url}/{str(transport.get('endpoint') or 'api/v1/lineage').lstrip('/')} (OpenLineage HTTP transport)"
    if kind == "composite":
        return "; ".join(_describe(t) for t in (transport.get("transports") or {}).values()) or "composite (empty)"
    return f"the {kind} transport (OpenLineage)"


def airflow_dags_test(airflow: str, dag_id: str, log_path: Path, mode: str, conf: dict | None = None) -> int:
    """``airflow dags test <dag_id>`` (with ``conf`` as the run's params), its output appended to the log."""
    command = [airflow, "dags", "test", dag_id, *(["-c", json.dumps(conf)] if conf else [])]
    with log_path.open(mode) as log:
        log.write(f"\n===== airflow dags test {dag_id} =====\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode


def _config_problems(log: str) -> str:
    """check_config's message in the run's log (the heading and its indented lines), or ''."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "the run's configuration cannot work:" in line:
            end = next((n for n, text in enumerate(lines[i + 1:]) if not text.startswith("  ")), len(lines) - i - 1)
            return "\n".join(["the run's configuration cannot work:", *lines[i + 1:i + 1 + end]])
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="", help='the run\'s params as JSON, e.g. \'{"source": "/photos/new"}\'')
    args = parser.parse_args(argv)
    try:
        conf = json.loads(args.conf) if args.conf.strip() else {}
    except ValueError as exc:
        print(f"--conf is not JSON: {exc}")
        return 2
    catalog_home = _catalog_home().resolve()
    workspace = Path(_path(conf["workspace"])) if "workspace" in conf else catalog_home / "work"
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log_path = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "demo-run.log"
    started = time.time()
    print(f"running catalog_refresh through Airflow (log: {log_path}) ...", flush=True)
    returncode = airflow_dags_test(airflow, "catalog_refresh", log_path, "w", conf)
    wall = time.time() - started
    runs = uri_to_path(WorkspaceLayout(str(workspace)).runs)
    reports = [p for p in runs.glob(f"*/{RunLayout.REPORT}") if p.stat().st_mtime >= started]
    if not reports:  # stopped before publish (check_config refused the conf, or Airflow itself failed)
        print(_config_problems(log_path.read_text()) or "".join(log_path.read_text().splitlines(keepends=True)[-60:]))
        print(f"catalog_refresh FAILED (exit {returncode}); full log: {log_path}")
        return returncode or 1
    latest = max(reports, key=lambda p: p.stat().st_mtime)
    report = json.loads(latest.read_text())
    discovery = json.loads(uri_to_path(RunLayout(str(latest.parent)).discovery).read_text())
    counts = report["counts"]
    print()
    recipe = report["recipe"]["name"] if report["recipe"] else "-"
    print(f"catalog_refresh run {report['run_id']}: recipe {recipe}, {', '.join(report['backends']) or 'no backend call'}")
    print(f"  discovery: {discovery['images']} new or changed images; {discovery['unchanged']} unchanged since "
          f"published and {len(discovery.get('refused_before', []))} refused before with the same bytes: "
          f"skipped, no edit call")
    if not discovery["images"]:
        print("  (nothing changed since the last run: `make clean` starts the catalog over)")
    rights = report.get("rights")
    if rights:
        waiting, refused = rights["waiting_for_consent"], rights["refused"]
        print(f"  rights check (policy {rights['policy_name']}): {rights['counts']['go']} go / "
              f"{len(waiting)} wait for consent{' (' + ', '.join(waiting) + ')' if waiting else ''} / "
              f"{len(refused)} refused{' (' + ', '.join(refused) + ')' if refused else ''}; "
              f"faces looked for in {rights['people_checked']}, found in {rights['people_found']}")
    print(f"  images {found_phrase(counts)} / edited {counts['edited']} / failed {counts['failed']} "
          f"/ quarantined {counts['quarantined']} / published {counts['published']} "
          f"/ from the result cache {counts.get('cache_hits', 0)}   "
          f"wall time {wall:.1f} s (edit time {report['edit_seconds']:.1f} s)")
    cost = report.get("cost") or {}
    decision = cost.get("decision")
    if decision:
        print(f"  cost check: {decision['action']} (policy {decision['policy']}): {decision['message']}")
        for name, variant in decision.get("variants", {}).items():
            print(f"    the same run on {name} would cost ${variant['usd']:.2f} "
                  f"(band ${variant['low_usd']:.2f}-${variant['high_usd']:.2f}; shipped price table)")
        print(f"  spent ${cost['actual_usd']:.2f} in {cost['paid_calls']} paid calls "
              f"({cost['cache_hits']} results from the cache)")
    quality = report.get("quality")
    if quality and quality["pass_rate"] is not None:
        print(f"  quality gate ({', '.join(quality['profiles'])}): pass rate {quality['pass_rate']:.0%}, "
              f"{quality['quarantined']} quarantined")
    for failure in report["failures"]:
        print(f"  {failure.get('status', 'failed')}: {failure['image_id']}: {failure['error']}")
    print(f"  published images: {_path(report['published_root'])}")
    print(f"  run report:       {_path(report['report_html'])}")
    print(f"                    {_path(report['report_json'])}")
    for docs in (quality or {}).get("data_docs", []):
        print(f"  GX Data Docs:     {_path(docs)}")
    if report.get("audit_uri"):
        print(f"  audit records:    {_path(report['audit_uri'])}")
    if report["published"]:
        example = _path(report["published"][0]["published_uri"])
        print(f"  trace an image:   .venv/bin/image-catalog-audit trace {example}")
    # no scheduler runs the asset-triggered feed here: run it by hand, as the README says
    feed_status = airflow_dags_test(airflow, "catalog_feed", log_path, "a")
    feed = Path(_path(report["published_root"])) / "feed.csv"
    if feed_status != 0:
        print(f"  storefront feed:  catalog_feed FAILED (exit {feed_status}); see {log_path}")
    elif feed.is_file():
        rows = max(sum(1 for _ in feed.open()) - 1, 0)
        fresh = "rebuilt" if feed.stat().st_mtime >= started else "unchanged"
        print(f"  storefront feed:  {feed} ({rows} images; {fresh} by catalog_feed)")
    print(f"  lineage events:   {lineage_destination()}")
    outcome = report.get("outcome") or {}
    if outcome.get("status") == "failed" or returncode != 0:
        # partial publishing: what passed is published above; the run failed, and says why
        print(f"catalog_refresh FAILED ({outcome.get('policy')} publishing, {counts['published']} published, "
              f"{outcome.get('held', 0)} held); full log: {log_path}")
        for reason in outcome.get("reasons") or []:
            print(f"  {reason}")
        return returncode or 1
    return feed_status

if __name__ == "__main__":
    sys.exit(main())
