"""``make demo-router``: the canary on the local edit service's EMULATED model tiers, then a routed run, end to end.

Starts the local edit service on a free loopback port, points the connection ``image_edit_tiers``
at it (``backend: openai``), makes a small source (the bundled product samples at a 480 px long
side: a quarter of the engine's work), runs ``airflow dags test catalog_canary`` with the shipped
``emulated_tiers`` candidates and prints the canary's table, its choice and the routing decision
it recorded; then runs ``catalog_refresh`` with ``routing=true`` over the same source (in a workspace that
holds the canary's decision, not its edits) and prints the routing table, the escalations and the saving
against the fixed candidate and the strongest. The tiers' prices and defect rates are stated, not
measured: real quality differences come only from real backends.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from airflow_image_catalog.config.locations import catalog_home
from airflow_image_catalog.pipeline.routing.summary import ordered_candidates
from airflow_image_catalog.tooling.demo import airflow_dags_test
from airflow_image_catalog.tooling.service.server import LocalEditService
from airflow_image_catalog.tooling.service.state import ServiceState

DEMO_KEY = "sk-local-router-demo"
CONN_ID = "image_edit_tiers"
SIDE = 480
#: the canary's settings for the demo (a real canary samples more: 40 by default)
CANARY = {"candidates": "emulated_tiers", "sample_size": 12, "seed": "demo", "target_pass_rate": 0.6}
#: the procedural products and the real product photo (the scene photos are no product shots)
SKIP_PREFIXES = ("photo_", "broken_")


def small_source(samples: Path, dest: Path, side: int = SIDE) -> Path:
    """The bundled product samples at a ``side`` px long side (written once; unchanged files kept)."""
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(samples.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or path.name.startswith(SKIP_PREFIXES):
            continue
        target = dest / path.name
        if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
            continue
        with Image.open(path) as image:
            image.thumbnail((side, side))
            image.save(target)
    return dest


def main() -> int:
    home = catalog_home().resolve()
    root = home / "router-demo"
    source = small_source(home / "samples", root / "source")
    workspace = root / "work"
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log_path = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "demo-router.log"
    with LocalEditService(0, state=ServiceState(api_key=DEMO_KEY)) as service:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
            "conn_type": "image_edit", "host": service.openai_base_url, "password": DEMO_KEY,
            "extra": {"backend": "openai", "max_concurrency": 4}})
        print(f"local edit service on {service.url} (EMULATED tiers: emulated-lite / -standard / -pro, stated "
              f"prices and defect rates); {CONN_ID} -> backend openai", flush=True)
        started = time.time()
        print(f"running catalog_canary through Airflow on {source} (log: {log_path}) ...", flush=True)
        code = airflow_dags_test(airflow, "catalog_canary", log_path, "w", {
            "source": str(source), "workspace": str(workspace), "backend_conn_id": CONN_ID, **CANARY})
        wall = time.time() - started
        served = dict(service.state.served)
        tables = [p for p in workspace.glob("runs/*/canary/report.md") if p.stat().st_mtime >= started]
        if code != 0 or not tables:
            print("".join(log_path.read_text().splitlines(keepends=True)[-60:]))
            print(f"catalog_canary FAILED (exit {code}); full log: {log_path}")
            return code or 1
        table = max(tables, key=lambda p: p.stat().st_mtime)
        report = json.loads(table.with_name("report.json").read_text())
        print()
        print(table.read_text())
        print(f"  routing decision: {report['decision_uri'].removeprefix('file://')}")
        print(f"  the canary spent ${report['spent_total_usd']:.4f} (booked in the ledger under {workspace / 'ledger'}); "
              f"the service served {served.get('POST /v1/images/edits', 0)} edit requests; wall time {wall:.0f} s")
        code = routed_run(airflow, log_path, source, workspace, table, root)
    print("  EMULATION: the tiers' prices and defects are stated (docs/backends.md); real quality differences "
          "come only from real backends")
    return code


def routed_workspace(canary_workspace: Path, canary_table: Path, workspace: Path) -> None:
    """A fresh workspace holding the canary's routing decisions and its table, none of its edits: the routed
    run pays for every image (with the canary's workspace, the sampled images would come from the cache free)."""
    shutil.rmtree(workspace, ignore_errors=True)
    shutil.copytree(canary_workspace / "routing", workspace / "routing")
    target = workspace / canary_table.relative_to(canary_workspace)
    target.parent.mkdir(parents=True)
    shutil.copy(canary_table.with_name("report.json"), target.with_name("report.json"))


def routing_table(routing: dict, decision: dict) -> str:
    """A routed run's table as the demo prints it: per candidate, escalations, cost per passing image and the
    saving against the fixed candidate and the strongest (expected on the same images), with the canary's
    measured cost per passing image beside them."""
    measured = {f["candidate"]: f.get("cost_per_passing_usd") for f in decision.get("figures") or []}

    def usd(value):
        return "-" if value is None else f"${value:.4f}"

    lines = [f"Routed catalog_refresh (routing=true): {routing['images']} images, target pass rate "
             f"{routing['target']:.0%}, exploration {routing['explore_share']:.0%}", "",
             "| candidate | estimated pass | routed | edits | passed | quarantined | cost | fixed: expected / pass "
             "| canary: measured / pass |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in ordered_candidates(routing):
        estimate = "-" if row.get("pass_probability") is None else f"{row['pass_probability']:.0%}"
        lines.append(f"| {name} | {estimate} | {row['routed']} | {row['attempts']} | {row['passed']} | "
                     f"{row['quarantined']} | {usd(row['usd'])} | {usd(row.get('fixed_usd_per_pass'))} | "
                     f"{usd(measured.get(name))} |")
    escalations = routing["escalations"]
    saving = routing.get("saving_vs_fixed")
    strongest = routing.get("saving_vs_strongest")
    lines += ["", f"escalations: {escalations['attempted']} re-edited on the next stronger tier, {escalations['passed']} "
                  f"passed, {escalations['not_sent']} not sent ({usd(escalations['usd'])})",
              f"passed {routing['passed']} of {routing['images']} ({routing['pass_rate']:.0%}); cost per passing image "
              f"expected {usd(routing.get('expected_usd_per_pass'))}, actual {usd(routing.get('actual_usd_per_pass'))}",
              f"saving against the fixed candidate {routing.get('fixed_candidate')} "
              f"({usd(routing.get('fixed_usd_per_pass'))} expected per pass): "
              + ("-" if saving is None else f"{saving:.0%}")
              + f"; against always {routing.get('strongest')} ({usd(routing.get('strongest_usd_per_pass'))}): "
              + ("-" if strongest is None else f"{strongest:.0%}")]
    return "\n".join(lines) + "\n"


def routed_run(airflow: str, log_path: Path, source: Path, canary_workspace: Path, canary_table: Path,
               root: Path) -> int:
    """catalog_refresh with routing on over the same source, in a workspace with the canary's decision; prints
    the routing table and the saving."""
    routed = root / "routed"
    shutil.rmtree(routed / "published", ignore_errors=True)
    routed_workspace(canary_workspace, canary_table, routed / "work")
    started = time.time()
    print(f"running catalog_refresh with routing=true on {source} (workspace {routed}) ...", flush=True)
    code = airflow_dags_test(airflow, "catalog_refresh", log_path, "a", {
        "source": str(source), "workspace": str(routed / "work"), "published": str(routed / "published"),
        "backend_conn_id": CONN_ID, "routing": True, "min_pass_rate": 0.0})
    reports = list((routed / "work").glob("runs/*/report.json"))
    if code != 0 or not reports:
        print("".join(log_path.read_text().splitlines(keepends=True)[-60:]))
        print(f"routed catalog_refresh FAILED (exit {code}); full log: {log_path}")
        return code or 1
    report = json.loads(reports[0].read_text())
    decision = json.loads(canary_table.with_name("report.json").read_text())["decision"]
    print()
    print(routing_table(report["routing"], decision))
    print(f"  published {report['counts']['published']} to {routed / 'published'}; run report "
          f"{report['report_html'].removeprefix('file://')}; wall time {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
