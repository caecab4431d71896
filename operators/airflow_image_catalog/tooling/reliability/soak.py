"""The soak: N small images through the real ``catalog_refresh`` DAG against the local edit service.

Each N runs in a fresh process (``python -m airflow_image_catalog.tooling.reliability --soak-child N``), so its peak
RSS is its own; the edit service runs in the parent and counts every edit. Images are 48-54 px
PNGs, the service adds no latency, chunks are large (``chunk_size``), the quality profile is
lenient: what is measured is the pipeline's own cost per image and whether memory grows with N.
``dag.test()`` runs every task in that one process, one after another, so the process's peak is
the peak of its largest task (plus Airflow itself); RSS is also sampled after each task.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_image_catalog.tooling.reliability.runner import (
    LENIENT_PROFILE,
    RECIPE,
    PeakRss,
    catalog_refresh,
    connection_env,
    write_sources,
)
from airflow_image_catalog.workspace.layout import WorkspaceLayout


def soak_edit_child(count: int, root: Path, service_url: str, api_key: str, chunk_size: int) -> dict[str, Any]:
    """The edit stage only (discovery, chunk manifests, every chunk through ``ImageEditOperator.execute``
    one after another in this process): RSS after each chunk shows whether a task's memory grows."""
    from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
    from airflow_image_catalog.storage import read_json
    from airflow_image_catalog.tooling.reliability.runner import edit_task

    folder = root / f"soak-edit-{count}"
    (folder / "source").mkdir(parents=True, exist_ok=True)
    for name, data in write_sources(folder, count, seed=count):
        (folder / "source" / name).write_bytes(data)
    (folder / "recipe.json").write_text(json.dumps(RECIPE))
    os.environ.update(connection_env("openai", service_url, api_key, {"max_concurrency": 16, "timeout": 30.0}))
    conf = {"source": str(folder / "source"), "workspace": str(folder / "work"), "recipe": str(folder / "recipe.json"),
            "backend_conn_id": "reliability_edit", "deferrable": False, "max_failure_rate": 1.0}
    started = time.perf_counter()
    counts: dict[str, int] = {}
    after_chunk = []
    with PeakRss(interval=0.05) as rss:
        run_root = WorkspaceLayout(str(folder / "work")).run("soak").root
        chunks = write_chunk_manifests(discover_images(conf["source"]), run_root=run_root, run_key="soak",
                                       chunk_size=chunk_size)
        for uri in chunks:
            for status, n in read_json(edit_task(conf, uri))["counts"].items():
                counts[status] = counts.get(status, 0) + n
            after_chunk.append(PeakRss.now_mb())
    wall = time.perf_counter() - started
    return {"images": count, "stage": "edit", "state": "success", "chunk_size": chunk_size, "wall_s": round(wall, 1),
            "per_image_ms": round(1000 * wall / max(count, 1), 1), "peak_rss_mb": rss.mb, "statuses": counts,
            "rss_after_chunks_mb": [after_chunk[0], after_chunk[len(after_chunk) // 2], after_chunk[-1]]}


def soak_child(count: int, root: Path, service_url: str, api_key: str, chunk_size: int) -> dict[str, Any]:
    """Body of the soak process: write ``count`` sources, one DAG run, figures as a dict."""
    from airflow_image_catalog.storage import list_objects, read_json

    folder = root / f"soak-{count}"
    (folder / "source").mkdir(parents=True, exist_ok=True)
    for name, data in write_sources(folder, count, seed=count):
        (folder / "source" / name).write_bytes(data)
    (folder / "recipe.json").write_text(json.dumps(RECIPE))
    (folder / "lenient.yaml").write_text(LENIENT_PROFILE)
    os.environ.update(connection_env("openai", service_url, api_key, {"max_concurrency": 16, "timeout": 30.0}))
    conf = {"source": str(folder / "source"), "workspace": str(folder / "work"),
            "published": str(folder / "published"), "recipe": str(folder / "recipe.json"),
            "backend_conn_id": "reliability_edit", "chunk_size": chunk_size, "min_pass_rate": 0.0,
            "quality_profile": str(folder / "lenient.yaml")}
    started = time.perf_counter()
    with PeakRss(interval=0.05) as rss:
        dagrun = catalog_refresh().test(run_conf=conf)
    wall = time.perf_counter() - started
    run = WorkspaceLayout(conf["workspace"]).run_for({"run_id": dagrun.run_id})
    counts: dict[str, int] = {}
    for obj in list_objects(run.edits):
        for status, n in read_json(obj.uri)["counts"].items():
            counts[status] = counts.get(status, 0) + n
    report = read_json(run.report_json)
    return {"images": count, "stage": "dag", "state": str(dagrun.state), "chunk_size": chunk_size, "wall_s": round(wall, 1),
            "per_image_ms": round(1000 * wall / max(count, 1), 1), "peak_rss_mb": rss.mb, "statuses": counts,
            "published": report["counts"].get("published")}


def run_soak(counts: list[int], root: Path, service: Any, env: dict[str, str], *, chunk_size: int = 500,
             log: Path | None = None, stage: str = "dag") -> list[dict[str, Any]]:
    """Each N in a fresh process against ``service`` (``stage``: ``dag`` or ``edit``); the service's paid
    and duplicate counts added."""
    results = []
    for count in counts:
        service.state.reset(config=True)
        key = f"sk-soak-{os.urandom(8).hex()}"
        service.state.api_key = key
        out = root / f"soak-{count}.json"
        args = [sys.executable, "-m", "airflow_image_catalog.tooling.reliability", "--soak-child", str(count), "--root", str(root),
                "--service-url", service.url, "--api-key", key, "--chunk-size", str(chunk_size),
                "--result", str(out), "--soak-stage", stage]
        with open(log or os.devnull, "ab") as sink:
            proc = subprocess.run(args, env={**os.environ, **env}, stdout=sink, stderr=sink)
        if proc.returncode != 0 or not out.exists():
            results.append({"images": count, "stage": stage, "state": f"crashed (exit {proc.returncode})"})
            continue
        figures = json.loads(out.read_text())
        figures.update(paid=len(service.state.performed), duplicates=service.state.duplicates(),
                       lost=count - sum(figures["statuses"].values()))
        if figures.get("published") is None:
            figures["published"] = "-"
        results.append(figures)
    return results


def render(results: list[dict[str, Any]]) -> str:
    from airflow_image_catalog.tooling.reliability.table import render as table
    from airflow_image_catalog.tooling.reliability.table import states

    rows = [[str(r["images"]), r.get("stage", "dag"), str(r.get("state")), states(r.get("statuses", {})), str(r.get("published", "-")),
             str(r.get("paid", "-")), str(r.get("duplicates", "-")), str(r.get("lost", "-")),
             str(r.get("peak_rss_mb", "-")),
             " / ".join(str(v) for v in r.get("rss_after_chunks_mb", [])) or "-", str(r.get("wall_s", "-")),
             str(r.get("per_image_ms", "-"))]
            for r in results]
    return table(rows, ("images", "through", "run", "states", "published", "backend calls", "duplicate", "lost",
                        "peak RSS MB", "RSS after first / middle / last chunk", "wall s", "ms/image"))
