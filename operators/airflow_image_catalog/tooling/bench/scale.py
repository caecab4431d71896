"""``make bench-scale``: whole catalog_refresh runs at 1,000 and 10,000 images on the local stack, in figures.

The stack is ``make up``'s (``tooling/stack.py``: api-server, scheduler with LocalExecutor, dag-processor,
triggerer on a SQLite Airflow home of the bench's own), triggered through the REST API: every task in its
own process, scheduled by the real scheduler, the default chunking, the gate's real metrics and Great
Expectations suite, publish with provenance and the audit trail. The edits use the local engine (no
network: the stage's cost is the engine's), on small generated product shots (a coloured box on white,
distinct bytes) and a recipe that cuts the product out and centres it on a 512 x 512 white canvas.

Printed, and written to ``$CATALOG_HOME/bench/scale.json``: per size the wall time (trigger to the run's
end), images per minute, time per stage (first start to last end of its task instances, and their
summed task time), and the peak RSS of every task process (``ru_maxrss`` recorded by a cluster policy,
:mod:`~airflow_image_catalog.tooling.bench.task_usage`), per task and as the ratio between the sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_image_catalog.config.locations import catalog_home
from airflow_image_catalog.tooling.bench.throughput import machine, write_sources
from airflow_image_catalog.tooling.stack import AirflowStack

DAG_ID = "catalog_refresh"
STAGES = ("check_config", "discover", "rights_check", "cost_check", "edit", "quality_gate", "publish", "outcome")
PROFILE = """name: bench_scale
description: what the bench's edits must show (the gate computes every metric whatever the list)
expectations:
  - {metric: width, min: 512, max: 512, why: the recipe's canvas}
  - {metric: bg_exact_share, min: 0.9, why: pure white around the product}
  - {metric: product_fill, min: 0.5, why: the product centred large}
"""
RECIPE = {
    "version": 1, "name": "bench_scale", "description": "cut out, centred on a 512 x 512 white canvas",
    "output": {"format": "jpeg", "quality": 90, "size": "512x512"},
    "steps": [
        {"id": "white_background", "prompt": "Replace the background with pure white; keep the product as it is.",
         "local": {"op": "white_background", "params": {"shadow": False, "feather_px": 1}}},
        {"id": "square_canvas", "prompt": "Centre the product on a 512 x 512 white canvas at 85% fill.",
         "local": {"op": "fit_canvas", "params": {"width": 512, "height": 512, "product_fill": 0.85,
                                                  "background": "#FFFFFF"}}},
    ],
}


def _when(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def stage_times(tis: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task: instances, first start to last end, and the sum of the instances' durations (seconds)."""
    out = {}
    for stage in STAGES:
        mine = [t for t in tis if t["task_id"] == stage and t["start_date"] and t["end_date"]]
        if mine:
            out[stage] = {"instances": len(mine),
                          "span_s": round(max(_when(t["end_date"]) for t in mine) - min(_when(t["start_date"]) for t in mine), 1),
                          "task_s": round(sum(t["duration"] or 0 for t in mine), 1)}
    return out


def task_usage(folder: Path, run_id: str) -> dict[str, dict[str, float]]:
    """Per task of the run: the largest and the median peak RSS (MB) of its processes, and their CPU seconds."""
    per_task: dict[str, list[dict]] = defaultdict(list)
    for path in folder.glob("*.json"):
        record = json.loads(path.read_text())
        if record["run_id"] == run_id:
            per_task[record["task_id"]].append(record)
    out = {}
    for task, records in per_task.items():
        rss = sorted(r["max_rss_mb"] for r in records)
        out[task] = {"processes": len(records), "peak_rss_mb": round(rss[-1], 1), "median_rss_mb": round(rss[len(rss) // 2], 1),
                     "cpu_s": round(sum(r["cpu_s"] for r in records), 1)}
    return out


def run_size(stack: AirflowStack, root: Path, images: int, first: int, timeout: float) -> dict[str, Any]:
    """One catalog_refresh run of ``images`` new images, triggered through the REST API; its figures."""
    name = f"n{images}"
    source = write_sources(root / name / "source", images, first, side=160)
    conf = {"source": str(source), "workspace": str(root / name / "work"), "published": str(root / name / "published"),
            "recipe": str(root / "bench_scale.json"), "quality_profile": str(root / "bench_scale_profile.yaml")}
    started = time.time()
    run_id = stack.trigger(DAG_ID, conf)
    state = stack.wait_run(DAG_ID, run_id, timeout=timeout)
    run = stack.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}")
    wall = _when(run["end_date"]) - _when(run["start_date"])
    tis = stack.task_instances(DAG_ID, run_id)
    report_path = next((root / name / "work" / "runs").glob("*/report.json"), None)
    report = json.loads(report_path.read_text()) if report_path else {}
    counts = report.get("counts", {})
    return {
        "images": images, "state": state, "run_id": run_id, "wall_s": round(wall, 1),
        "trigger_to_end_s": round(time.time() - started, 1),
        "images_per_min": round(counts.get("published", 0) / wall * 60, 1) if wall else None,
        "counts": {k: counts.get(k) for k in ("found", "edited", "failed", "quarantined", "published")},
        "stages": stage_times(tis), "usage": task_usage(Path(stack.env["CATALOG_TASK_USAGE"]), run_id),
        "failed_tasks": sorted({(t["task_id"], t["map_index"]) for t in tis if t["state"] not in ("success", "skipped")}),
    }


def render(result: dict[str, Any]) -> str:
    m, sizes = result["machine"], result["sizes"]
    lines = [f"catalog_refresh on the local stack (LocalExecutor, SQLite, [core] parallelism "
             f"{result['parallelism']}), local engine, {result['recipe']}",
             f"machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}", ""]
    runs = [result["runs"][str(n)] for n in sizes]
    head = f"{'':<34}" + "".join(f"{n:>16,}" for n in sizes)
    lines += [head, "-" * len(head)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"{label:<34}" + "".join(f"{v:>16}" for v in values))

    row("run state", [r["state"] for r in runs])
    row("wall time (run start to end)", [f"{r['wall_s']:.0f} s" for r in runs])
    row("images published per minute", [f"{r['images_per_min']:.0f}" for r in runs])
    row("found / published / quarantined", [f"{r['counts']['found']}/{r['counts']['published']}/"
                                            f"{r['counts']['quarantined']}" for r in runs])
    for stage in STAGES:
        row(f"{stage}: instances, span", [
            f"{r['stages'][stage]['instances']} x, {r['stages'][stage]['span_s']:.0f} s" if stage in r["stages"] else "-"
            for r in runs])
    for stage in STAGES:
        row(f"{stage}: peak RSS per task", [
            f"{r['usage'][stage]['peak_rss_mb']:.0f} MB" if stage in r["usage"] else "-" for r in runs])
    if len(runs) > 1:
        small, large = runs[0]["usage"], runs[-1]["usage"]
        ratios = {stage: large[stage]["peak_rss_mb"] / small[stage]["peak_rss_mb"]
                  for stage in STAGES if stage in small and stage in large}
        lines += ["", "peak RSS per task, largest run / smallest: " + ", ".join(
            f"{stage} x{ratio:.2f}" for stage, ratio in ratios.items())]
    lines += ["", f"whole bench: {result['bench_wall_s']:.0f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.bench.scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="images per run, comma separated")
    parser.add_argument("--parallelism", type=int, default=8, help="[core] parallelism of the stack")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds a run may take")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default $CATALOG_HOME/bench/scale.json)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the stack's home, the images and the logs")
    args = parser.parse_args(argv)
    sizes = sorted(int(v) for v in args.sizes.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # ``timeout``: stop the stack first
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="catalog-bench-scale-"))
    (root / "bench_scale.json").write_text(json.dumps(RECIPE))
    (root / "bench_scale_profile.yaml").write_text(PROFILE)
    env = {"CATALOG_HOME": str(root / "catalog"), "CATALOG_TASK_USAGE": str(root / "usage"),
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}  # only the bench's runs
    stack = AirflowStack(root / "airflow", env, local_settings=Path(__file__).with_name("task_usage.py"),
                         settings={"AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
                                   "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
    result: dict[str, Any] = {"machine": machine(), "sizes": sizes, "parallelism": args.parallelism,
                              "recipe": "white_background + fit_canvas 512x512 (JPEG)", "runs": {}}
    out = args.out or catalog_home() / "bench" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        print(f"starting the stack in {root} ...", flush=True)
        stack.start()
        stack.wait_healthy()
        stack.wait_dag(DAG_ID)
        first = 0
        for images in sizes:
            print(f"catalog_refresh with {images:,} images ...", flush=True)
            result["runs"][str(images)] = run_size(stack, root, images, first, args.timeout)
            first += images
            # a long proof may be stopped before its last size: what each finished size measured is kept and shown
            partial = {**result, "sizes": [n for n in sizes if str(n) in result["runs"]],
                       "bench_wall_s": round(time.perf_counter() - started, 1)}
            out.write_text(json.dumps(partial, indent=2) + "\n")
            print(render(partial), flush=True)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()
        if not args.keep_temp:
            shutil.rmtree(root, ignore_errors=True)
    result["bench_wall_s"] = round(time.perf_counter() - started, 1)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten to {out}")
    return 0 if all(run["state"] == "success" for run in result["runs"].values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
