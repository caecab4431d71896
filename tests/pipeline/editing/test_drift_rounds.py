"""Multi-round recipes: drift measured after every round, regeneration from the source past the limit."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.fixtures.service import product_png

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 2}
RECIPE = {"name": "warm_then_bright", "output": {"format": "png"}, "drift": {"max_phash_distance": 12,
                                                                              "min_product_ssim": 0.75},
          "steps": [
              {"id": "warm", "prompt": "Apply a warm golden-hour colour grade.",
               "local": {"op": "look", "params": {"name": "golden_hour"}}},
              {"id": "bright", "prompt": "Brighten the photo slightly.",
               "local": {"op": "exposure", "params": {"stops": 0.3}}}]}


def _chunk(tmp_path: Path, count: int = 1) -> ChunkManifest:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(count):
        (source / f"p{i}.png").write_bytes(product_png(192, 160, color=(180, 60 + 40 * i, 40), texture=True))
    found = discover_images(str(source))
    return ChunkManifest("run", 0, found.source_root, found.items)


def _openai(service, monkeypatch):
    conn = {"conn_type": "image_edit", "host": service.openai_base_url, "password": "sk-drift",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_DRIFT_EDIT", json.dumps(conn))
    return ImageEditHook("drift_edit").get_backend()


def test_clean_rounds_continue_and_record_their_drift(tmp_path: Path):
    manifest = edit_chunk(_chunk(tmp_path), parse_recipe(RECIPE), LocalEngineBackend(), run_root=str(tmp_path / "r"))
    (record,) = manifest.items
    assert record.status == "edited"
    assert [r["decision"] for r in record.rounds] == ["continue", "continue"]
    assert all(r["phash_distance"] <= 6 and r["product_ssim"] >= 0.9 for r in record.rounds)
    assert [s["id"] for s in record.steps] == ["warm", "bright"]


def test_a_drifted_round_regenerates_from_the_source_in_one_request(service, monkeypatch, tmp_path: Path):
    service.state.faults.add(kind="drift", path="/v1/images/edits", count=1, prompt_contains="Brighten")
    manifest = edit_chunk(_chunk(tmp_path), parse_recipe(RECIPE), _openai(service, monkeypatch),
                          run_root=str(tmp_path / "r"))
    (record,) = manifest.items
    assert record.status == "edited", record.error
    first, second = record.rounds
    assert first["decision"] == "continue"
    assert second["decision"] == "regenerated_from_source"
    assert second["phash_distance"] > 12 or second["product_ssim"] < 0.75  # the drifted round
    assert second["regenerated"]["phash_distance"] <= 12 and second["regenerated"]["product_ssim"] >= 0.75
    prompts = [entry["fields"]["prompt"] for entry in service.state.log]
    assert len(prompts) == len(service.state.performed) == 3  # round 1, round 2, the regeneration
    assert "1. Apply a warm golden-hour colour grade." in prompts[2] and "2. Brighten the photo slightly." in prompts[2]
    assert len(record.usage) == 3  # every paid request is accounted for, the drifted one too


def test_past_the_regeneration_budget_the_round_is_kept_and_flagged(service, monkeypatch, tmp_path: Path):
    service.state.faults.add(kind="drift", path="/v1/images/edits", count=-1, prompt_contains="Brighten")
    recipe = parse_recipe({**RECIPE, "drift": {**RECIPE["drift"], "max_regenerations": 0}})
    manifest = edit_chunk(_chunk(tmp_path), recipe, _openai(service, monkeypatch), run_root=str(tmp_path / "r"))
    (record,) = manifest.items
    assert [r["decision"] for r in record.rounds] == ["continue", "over_threshold_kept"]
    assert len(service.state.performed) == 2  # no regeneration: the quality gate judges the result
