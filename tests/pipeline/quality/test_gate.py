"""gate_chunk on real edits: GX verdicts land on the right image ids, failures are quarantined."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.pipeline.quality.gate import gate_chunk, infer_intent
from airflow_image_catalog.pipeline.quality.profiles import load_profile
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest, sha256_hex
from tests.conftest import copy_samples


def test_intents_are_inferred_from_the_recipes():
    assert {name: infer_intent(load_recipe(name)) for name in (
        "marketplace_white_square", "object_removal", "seasonal_background_swap", "color_match_reference",
        "campaign_style_look")} == {
        "marketplace_white_square": "reframe", "object_removal": "masked", "seasonal_background_swap": "region",
        "color_match_reference": "region", "campaign_style_look": "global"}


def test_damaged_edit_is_quarantined_and_the_rest_pass(tmp_path: Path, sample_set):
    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "box_tea.jpg", "can_soda.jpg"))
    found = discover_images(str(source))
    recipe = load_recipe("marketplace_white_square")
    manifest = edit_chunk(ChunkManifest("r", 0, found.source_root, found.items), recipe, LocalEngineBackend(),
                          run_root=str(tmp_path / "run"))
    # damage one edit after the fact: an off-white (RGB 245) background, as a sloppy model returns
    victim = next(r for r in manifest.items if r.image_id == "box_tea")
    path = Path(victim.output_uri[len("file://"):])
    pixels = np.asarray(Image.open(path).convert("RGB")).copy()
    pixels[(pixels == 255).all(axis=2)] = 245
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
    path.write_bytes(buffer.getvalue())
    victim.output_sha256 = sha256_hex(buffer.getvalue())

    gate = gate_chunk(manifest, recipe, load_profile("amazon_main"), source_root=found.source_root,
                      quarantine_root=str(tmp_path / "quarantine"), docs_root=str(tmp_path / "docs"))

    verdicts = {item["image_id"]: item for item in gate["items"]}
    assert {k: v["verdict"] for k, v in verdicts.items()} == {
        "ball_red": "pass", "box_tea": "quarantined", "can_soda": "pass"}
    failed = verdicts["box_tea"]["failed"]
    assert "bg_off_share" in {f["metric"] for f in failed}
    assert verdicts["box_tea"]["metrics"]["bg_off_share"] > 0.9 and verdicts["ball_red"]["metrics"]["bg_off_share"] == 0
    # the reviewer's sentence: what, where, how much
    background = next(f for f in failed if f["metric"] == "bg_off_share")
    assert background["category"] == "background"
    assert background["reason"].startswith("The background is not pure white: ")
    assert "RGB 245,245,245" in background["reason"] and "the whole canvas" in background["reason"]
    assert verdicts["box_tea"]["reasons"][0] == failed[0]["reason"]
    # the product was decided by the gate, not the engine: no GrabCut ran
    assert gate["canvas"] == "#FFFFFF" and set(gate["seconds"]) >= {"decode", "align", "checks", "validation"}
    assert gate["pass_rate"] == round(2 / 3, 4) and gate["counts"]["quarantined"] == 1
    record = json.loads((tmp_path / "quarantine" / "box_tea.json").read_text())
    assert record["output_sha256"] == victim.output_sha256 and record["review"] is None
    assert (tmp_path / "quarantine" / "box_tea.jpg").read_bytes() == buffer.getvalue()
    assert not (tmp_path / "quarantine" / "ball_red.json").exists()
    assert (tmp_path / "docs" / "index.html").exists() and gate["data_docs"].endswith("/index.html")
    failing = [a for a in gate["assertions"] if not a["success"]]
    assert "bg_off_share" in {a["column"] for a in failing}
