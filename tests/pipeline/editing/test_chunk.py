"""edit_chunk with the local engine: every image ends with a status, bad ones fail alone."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.recipes import load_recipe, shipped_recipes
from airflow_image_catalog.storage import read_bytes
from airflow_image_catalog.workspace.manifest import ChunkManifest, sha256_hex


def _chunk(source: Path) -> ChunkManifest:
    found = discover_images(str(source))
    return ChunkManifest("run", 0, found.source_root, found.items)


@pytest.fixture
def few_samples(tmp_path: Path, sample_set) -> Path:
    images, _ = sample_set
    source = tmp_path / "source"
    source.mkdir()
    for path in sorted(images.glob("*"))[:3]:
        shutil.copy(path, source / path.name)
    return source


def test_bad_inputs_fail_alone_with_clear_reasons(tmp_path: Path, few_samples: Path):
    good = sorted(p.name for p in few_samples.iterdir())
    jpeg = next(p for p in few_samples.iterdir() if p.suffix == ".jpg").read_bytes()
    (few_samples / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (few_samples / "text.png").write_bytes(b"hello, I am not a PNG")
    (few_samples / "empty.webp").write_bytes(b"")
    huge = io.BytesIO()
    Image.new("1", (9000, 9000)).save(huge, "PNG")  # 81 MP, tiny file
    (few_samples / "huge.png").write_bytes(huge.getvalue())

    manifest = edit_chunk(_chunk(few_samples), load_recipe("marketplace_white_square"),
                          LocalEngineBackend(), run_root=str(tmp_path / "run"))

    by_id = {r.image_id: r for r in manifest.items}
    assert manifest.counts() == {"edited": len(good), "failed_retryable": 0, "failed_final": 4, "skipped_budget": 0}
    assert "truncat" in by_id["truncated"].error.lower()
    assert "not an image" in by_id["text"].error.lower() or "identif" in by_id["text"].error.lower()
    assert "empty" in by_id["empty"].error.lower()
    assert "pixels" in by_id["huge"].error.lower()
    for record in manifest.items:
        assert record.finished_at and record.seconds is not None
        if record.status == "edited":
            data = read_bytes(record.output_uri)
            assert sha256_hex(data) == record.output_sha256
            assert Image.open(io.BytesIO(data)).size == (2000, 2000)
            assert [s["id"] for s in record.steps] == ["white_background", "square_canvas"]
            assert record.usage and all(u["cost_usd"] == 0.0 for u in record.usage)
        else:
            assert record.output_uri is None and record.error


def test_source_changed_after_discovery_is_not_edited(tmp_path: Path, few_samples: Path):
    chunk = _chunk(few_samples)
    victim = Path(chunk.items[0].source_uri[len("file://"):])
    victim.write_bytes(victim.read_bytes() + b"\0")
    manifest = edit_chunk(chunk, load_recipe("campaign_style_look"), LocalEngineBackend(),
                          run_root=str(tmp_path / "run"))
    assert manifest.items[0].status == "failed_final" and "changed since discovery" in manifest.items[0].error
    assert all(r.status == "edited" for r in manifest.items[1:])


@pytest.mark.parametrize("name", sorted(shipped_recipes()))
def test_every_shipped_recipe_runs_on_a_sample(tmp_path: Path, few_samples: Path, name: str):
    recipe = load_recipe(name)
    if name == "object_removal":  # per-image masks live beside the sources
        for item in _chunk(few_samples).items:
            w, h = Image.open(item.source_uri[len("file://"):]).size
            mask = Image.new("L", (w, h), 0)
            mask.paste(255, (w // 10, h // 10, w // 10 + w // 12, h // 10 + h // 12))
            (few_samples / "masks").mkdir(exist_ok=True)
            mask.save(few_samples / "masks" / f"{item.image_id}.png")
    manifest = edit_chunk(_chunk(few_samples), recipe, LocalEngineBackend(), run_root=str(tmp_path / "run"))
    assert manifest.counts()["edited"] == 3, [r.error for r in manifest.items]
    for record in manifest.items:
        out = Image.open(io.BytesIO(read_bytes(record.output_uri)))
        src = Image.open(record.source_uri[len("file://"):])
        assert out.format.lower() == recipe.output.format
        expected = recipe.output.size or f"{src.size[0]}x{src.size[1]}"
        assert f"{out.size[0]}x{out.size[1]}" == expected
        assert not np.array_equal(np.asarray(out.convert("RGB").resize(src.size)), np.asarray(src.convert("RGB")))


def test_missing_per_image_mask_fails_that_image(tmp_path: Path, few_samples: Path):
    manifest = edit_chunk(_chunk(few_samples), load_recipe("object_removal"), LocalEngineBackend(),
                          run_root=str(tmp_path / "run"))
    # a missing input may be uploaded before a rerun: retryable, not final
    assert manifest.counts() == {"edited": 0, "failed_retryable": 3, "failed_final": 0, "skipped_budget": 0}
    assert all("masks/" in r.error and "cannot read" in r.error for r in manifest.items)
