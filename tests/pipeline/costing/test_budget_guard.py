"""The mid-run guard: once the run's actual spend reaches its budget, no more paid calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.pipeline.costing.decision import BudgetGuard
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.pipeline.editing.inline import aedit_chunk
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.dags.test_reruns import RECIPE
from tests.fixtures.service import product_png


def _run(tmp_path: Path, service, monkeypatch, budget: float) -> tuple[ChunkRun, Ledger]:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(5):
        (source / f"p{i}.png").write_bytes(product_png(128, 128, color=(30 + 40 * i, 80, 120)))
    found = discover_images(str(source))
    conn = {"conn_type": "image_edit", "host": service.url + "/v1", "password": "sk-guard",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", "max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_GUARD_EDIT", json.dumps(conn))
    ledger = Ledger(str(tmp_path / "work"))
    chunk = ChunkManifest("run_guard", 0, found.source_root, found.items)
    guard = BudgetGuard(budget, lambda: ledger.run_spend("run_guard"))
    return ChunkRun(chunk, parse_recipe(RECIPE), ImageEditHook("guard_edit").get_backend(),
                    str(tmp_path / "work" / "runs" / "run_guard"), workspace=str(tmp_path / "work"),
                    concurrency=1, ledger=ledger, guard=guard), ledger


def test_guard_stops_submitting_when_the_budget_is_spent(service, monkeypatch, tmp_path):
    run, ledger = _run(tmp_path, service, monkeypatch, budget=1.0)
    records = asyncio.run(aedit_chunk(run))  # first: learn what one edit costs, well within budget
    one = ledger.run_spend("run_guard") / len(records)
    assert one > 0 and len(service.state.performed) == 5

    service.state.reset()
    tmp2 = tmp_path / "second"
    tmp2.mkdir()
    run, ledger = _run(tmp2, service, monkeypatch, budget=one * 1.5)
    records = asyncio.run(aedit_chunk(run))
    statuses = [r.status for r in records]
    assert statuses == ["edited", "edited", "skipped_budget", "skipped_budget", "skipped_budget"]
    # one image at a time: after call 1 the spend is under budget, after call 2 it is over: nothing more
    assert len(service.state.performed) == 2
    assert ledger.run_spend("run_guard") <= one * 2 + 1e-9
    assert all("budget" in r.error for r in records[2:])
