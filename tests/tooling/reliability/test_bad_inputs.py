"""The bad-input corpus (generated here): each kind gets its clear per-image outcome, nothing crashes a
chunk, bad inputs cost no paid call, and bombs are refused before decoding (bounded memory)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from airflow_image_catalog.imaging.engine import decode_image
from airflow_image_catalog.tooling.reliability.corpus import (
    BAD_RECIPES,
    EDITED,
    HOSTILE_KEYS,
    IGNORED,
    corpus,
    decode_peak,
    wrong_size_mask_case,
)
from airflow_image_catalog.tooling.reliability.runner import run_corpus
from airflow_image_catalog.workspace.manifest import image_id_for

CASES = corpus()


def test_the_corpus_has_25_kinds_or_more():
    assert len({c.kind for c in CASES if c.expect != IGNORED}) >= 25


def test_corpus_through_the_edit_task_fails_each_bad_input_alone_and_free(chunk_lab):
    run = run_corpus(chunk_lab, CASES, backend="openai")
    assert not run.problems, "\n".join(run.problems)
    edited = sum(c.expect == EDITED for c in CASES) + 1  # + the control image
    assert run.result.final.get("edited") == edited
    assert run.result.calls == edited == run.result.ledger_rows  # a bad input never reaches a paid call


def test_corpus_through_the_dag_on_the_local_engine(dag_lab):
    run = run_corpus(dag_lab, CASES, backend="local")
    assert not run.problems, "\n".join(run.problems)


def test_bombs_are_refused_before_decoding():
    figures = decode_peak()
    assert figures["outcomes"]["decompression bomb (10000x10000, 100 KB)"] == "ImageDecodeError"
    # decoding the bomb would add ~100 MB (greyscale) to ~300 MB (RGB); everything together adds a few MB
    assert figures["peak_mb"] - figures["base_mb"] < 60, figures


def test_conversions_are_correct():
    by_kind = {c.kind: c for c in CASES}
    rotated = decode_image(by_kind["EXIF-rotated JPEG (orientation 6)"].data)
    assert rotated.shape[:2] == (80, 40)  # stored 80x40 landscape, displayed upright as 40x80
    plain = decode_image(by_kind["non-sRGB ICC profile (Adobe RGB)"].data)
    from PIL import Image

    from airflow_image_catalog.tooling.reliability.corpus import _product

    untagged = np.asarray(_product(size=(62, 40)))
    # the box's red is converted from Adobe RGB to sRGB: more saturated than the untagged numbers
    assert plain[20, 31, 0] > untagged[20, 31, 0] + 5 or plain[20, 31, 1] < untagged[20, 31, 1] - 5
    grey = decode_image(by_kind["16-bit PNG"].data)
    assert grey.dtype == np.uint8 and grey[0, 0, 0] == 0 and grey[-1, -1, 0] == 255
    transparent = decode_image(by_kind["palette PNG with transparency"].data)
    assert Image.fromarray(transparent).mode == "RGB"


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_object_keys_cannot_escape_the_output_location(key):
    image_id = image_id_for(key)
    assert image_id and ".." not in image_id.split("/") and not image_id.startswith("/")
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", image_id) and len(image_id) < 300


def test_hostile_keys_on_s3_are_discovered_with_safe_ids(s3_bucket):
    from airflow_image_catalog.pipeline.discovery.discover import discover_images
    from airflow_image_catalog.tooling.reliability.corpus import _product, _save

    data = _save(_product(size=(20, 20)), "PNG")
    keys = [*HOSTILE_KEYS, "名前.png", "写真.png", "画像.png"]  # three names that reduce to the same id
    for key in keys:
        s3_bucket.put("src/" + key, data)
    found = discover_images(s3_bucket.uri_for("src"))
    ids = [item.image_id for item in found.items]
    # keys with a "." or ".." component are hidden, as dotfiles are on file://: never read, never written
    visible = [k for k in keys if not any(part.startswith(".") for part in k.split("/"))]
    assert len(ids) == len(set(ids)) == len(visible)  # none lost, none merged into another
    assert all(".." not in i.split("/") and not i.startswith("/") for i in ids)


def test_a_mask_of_the_wrong_size_is_scaled_or_refused_clearly(tmp_path):
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.backends.imaging import edit_region
    from airflow_image_catalog.recipes import parse_recipe

    source, mask = wrong_size_mask_case()
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "shot.png").write_bytes(mask)
    recipe = parse_recipe({"name": "r", "steps": [{"id": "a", "prompt": "recolour", "mask": "{source_root}/masks/{image_id}.png",
                                                   "local": {"op": "recolor_region", "params": {"color": "#00ff00"}}}]})
    context = ImageContext("shot", f"file://{tmp_path}", None)
    try:
        region = edit_region(recipe.steps[0], source, context)
    except Exception as exc:  # refused: the reason names the sizes
        assert re.search(r"\d+x\d+", str(exc)), exc
    else:
        assert region.shape == (60, 80)  # scaled to the source


@pytest.mark.parametrize(("kind", "data", "field"), BAD_RECIPES, ids=[r[0] for r in BAD_RECIPES])
def test_bad_recipes_are_refused_naming_the_field(kind, data, field):
    from airflow_image_catalog.recipes import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match=field):
        parse_recipe(data, origin="mine.yaml")


def test_the_run_report_makes_no_thumbnail_of_a_bomb(tmp_path):
    from airflow_image_catalog.pipeline.publishing.report import thumbnail

    by_kind = {c.kind: c for c in CASES}
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(by_kind["decompression bomb (10000x10000, 100 KB)"].data)
    assert thumbnail(str(bomb)) == ""  # refused from the header (decoding it took ~470 MB)
