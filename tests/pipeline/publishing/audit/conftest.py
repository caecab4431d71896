"""A small published run for the audit tests: real local-engine edits, hand-made gate verdicts.

Chunk 0 is the local engine as it ran (free). Chunk 1 was edited by the local engine too, then
relabelled as an OpenAI run with token usage and ledger entries, so cost figures are non-zero
without a network. The gate manifests are written by hand (Great Expectations takes ~11 s to
import); their shape is :func:`airflow_image_catalog.pipeline.quality.gate.gate_chunk`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.pipeline.costing.ledger import Ledger, LedgerEntry
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.pipeline.publishing.publish import ChunkResult, publish_run
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.storage import join_uri, read_bytes, write_bytes
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest

RUN_ID = "manual__2026-11-19T10:00:00+00:00"
RUN_KEY = "manual__2026-11-19T10_00_00_00_00"
FAKE_API_KEY = "sk-live-AUDITTESTSECRET0123456789"
#: what the ledger booked for chunk 1: can (2 calls), bad (1 call, failed: no audit record)
PAID = {"can": [0.04, 0.02], "bad": [0.03]}
COLORS = {"mug": (200, 30, 30), "box": (30, 160, 60), "can": (40, 40, 200), "jar": (220, 160, 20)}


@dataclass
class EditedRun:
    chunks: list[ChunkManifest]
    edits: list[EditManifest]
    recipe: Any


def _source(folder: Path, names: list[str]) -> ChunkManifest:
    folder.mkdir(parents=True)
    for name in names:
        if name == "bad":
            (folder / "bad.jpg").write_bytes(b"not an image")
            continue
        image = Image.new("RGB", (240, 200), (180, 180, 185))
        ImageDraw.Draw(image).ellipse((60, 40, 180, 170), fill=COLORS[name])
        image.save(folder / f"{name}.jpg", quality=92)
    found = discover_images(str(folder))
    return ChunkManifest(RUN_KEY, 0, found.source_root, found.items)


@pytest.fixture(scope="package")
def edited_run(tmp_path_factory) -> EditedRun:
    """Two chunks edited once per test session (~1 s); tests copy what they change."""
    root = tmp_path_factory.mktemp("audit-run")
    recipe = load_recipe("marketplace_white_square")
    chunks = [_source(root / "src0", ["mug", "box"]), replace(_source(root / "src1", ["can", "jar", "bad"]),
                                                               chunk_index=1)]
    edits = [edit_chunk(chunk, recipe, LocalEngineBackend(), run_root=str(root / "run")) for chunk in chunks]
    return EditedRun(chunks, edits, recipe)


def _relabel_as_openai(edit: EditManifest) -> EditManifest:
    """Chunk 1 as a paid backend would have left it: usage with tokens, one cache hit."""
    data = edit.to_dict()
    data.update(backend="openai", model="gpt-image-2")
    for item in data["items"]:
        if item["image_id"] == "can":
            item["usage"] = [{"provider": "openai", "model": "gpt-image-2", "step": step, "input_tokens": 300,
                              "output_tokens": 4160, "api_key": FAKE_API_KEY,
                              "authorization": f"Bearer {FAKE_API_KEY}"}
                             for step in ("white_background", "square_canvas")]
            item["preparation"] = {"actions": ["downscale"], "x-key": FAKE_API_KEY, "note": f"Bearer {FAKE_API_KEY}"}
        if item["image_id"] == "jar":
            item["cache_hit"] = True
    return EditManifest.from_dict(data)


def _gate(edit: EditManifest, verdicts: dict[str, str], quarantine_root: str) -> dict[str, Any]:
    items = []
    for record in edit.items:
        verdict = verdicts.get(record.image_id, "not_gated")
        item: dict[str, Any] = {"image_id": record.image_id, "verdict": verdict, "failed": []}
        if verdict != "not_gated":
            fill = 0.86 if verdict == "pass" else 0.41
            item["metrics"] = {"intent": "reframe", "product_fill": fill, "bg_exact_share": 0.97,
                               "ssim_preserved": None, "phash_distance": 4, "format": "jpeg"}
        if verdict == "quarantined":
            item["failed"] = [{"expectation": "expect_column_values_to_be_between", "label": "0.845 <= product_fill",
                               "metric": "product_fill", "observed": 0.41, "why": "Amazon: fill >= 85%"}]
            item["quarantine_uri"] = write_bytes(join_uri(quarantine_root, f"{record.image_id}.jpg"),
                                                 read_bytes(record.output_uri))
        items.append(item)
    return {"kind": "gate", "schema_version": 1, "run_key": edit.run_key, "chunk_index": edit.chunk_index,
            "profile": "amazon_main", "intent": "reframe", "items": items,
            "counts": {v: sum(i["verdict"] == v for i in items) for v in ("pass", "quarantined", "not_gated")}}


def _book(ledger: Ledger, at: datetime) -> None:
    entries = [
        LedgerEntry(entry_id=f"{image}{n}", day=at.date().isoformat(), at=at.isoformat(), run_key=RUN_KEY,
                    image_id=image, cache_key=f"key-{image}", provider="openai", usd=usd, basis="usage",
                    call_index=n, dag_id="catalog_refresh", run_id=RUN_ID, task_id="edit", map_index=1,
                    chunk_index=1, model="gpt-image-2", recipe="marketplace_white_square",
                    usage={"input_tokens": 300, "output_tokens": 4160}, estimated_usd=0.05)
        for image, costs in PAID.items() for n, usd in enumerate(costs)
    ]
    ledger.record(entries)


@dataclass
class PublishedRun:
    workspace: str
    published_root: str
    results: list[ChunkResult]
    report: dict[str, Any]
    entries: list[LedgerEntry]
    recipe: Any
    run: dict[str, Any]


def publish(edited: EditedRun, workspace: str, published_root: str) -> PublishedRun:
    """What the publish step holds when it calls the audit: results, report, the run's ledger."""
    edit0, edit1 = edited.edits[0], _relabel_as_openai(edited.edits[1])
    mug = next(record for record in edit0.items if record.image_id == "mug")
    mug.edited_by = {"task_id": "edit", "map_index": 0, "try_number": 2}  # the proposed field (see records.py)
    quarantine = join_uri(workspace, "quarantine")
    results = [ChunkResult(edit0, _gate(edit0, {"mug": "pass", "box": "quarantined"}, quarantine)),
               ChunkResult(edit1, _gate(edit1, {"can": "pass", "jar": "pass"}, quarantine))]
    ledger = Ledger(workspace)
    _book(ledger, datetime.now(UTC))
    run = {"dag_id": "catalog_refresh", "run_id": RUN_ID, "task_id": "publish"}
    report = publish_run(results, published_root=published_root, workspace=workspace,
                         run_root=join_uri(workspace, "runs", RUN_KEY), run=run)
    return PublishedRun(workspace, published_root, results, report, ledger.entries(run_key=RUN_KEY),
                        edited.recipe, run)


@pytest.fixture
def local_run(edited_run: EditedRun, tmp_path: Path) -> PublishedRun:
    return publish(edited_run, (tmp_path / "work").as_uri(), (tmp_path / "published").as_uri())


@pytest.fixture
def s3_run(edited_run: EditedRun, s3_bucket) -> PublishedRun:
    return publish(edited_run, s3_bucket.uri_for("work"), s3_bucket.uri_for("published"))
