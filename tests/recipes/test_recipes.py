from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from airflow_image_catalog.recipes import RecipeError, load_recipe, parse_recipe, shipped_recipes

VALID = {
    "version": 1,
    "name": "test_recipe",
    "output": {"format": "jpeg", "quality": 90, "size": "1000x1000"},
    "steps": [
        {"id": "white", "prompt": "Make the background white.", "local": {"op": "white_background"}},
        {
            "id": "canvas",
            "prompt": "Square canvas.",
            "local": {"op": "fit_canvas", "params": {"width": 1000, "height": 1000, "product_fill": 0.85}},
        },
    ],
}


def _with(path: str, value):
    """VALID with one field (dotted path, list indexes as ints) replaced; value ``...`` deletes it."""
    doc = copy.deepcopy(VALID)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    target = doc
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


def test_every_shipped_recipe_loads_by_name():
    names = set(shipped_recipes())
    assert {
        "marketplace_white_square",
        "seasonal_background_swap",
        "color_match_reference",
        "object_removal",
        "campaign_style_look",
    } <= names
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.steps and all(step.prompt for step in recipe.steps)
        assert len(recipe.fingerprint) == 64


def test_marketplace_recipe_contents():
    recipe = load_recipe("marketplace_white_square")
    assert [s.local.op for s in recipe.steps] == ["white_background", "fit_canvas"]
    assert recipe.output.size == "2000x2000" and recipe.output.format == "jpeg"
    assert recipe.steps[1].local.params["product_fill"] == 0.85
    assert "white" in recipe.steps[0].prompt.lower()


def test_defaults_are_filled_and_fingerprint_tracks_content():
    a = parse_recipe(VALID)
    assert a.steps[0].local.params  # defaults filled by the engine's op spec
    assert parse_recipe(copy.deepcopy(VALID)).fingerprint == a.fingerprint
    b = parse_recipe(_with("steps.1.local.params.product_fill", 0.8))
    assert b.fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("steps.0.colour", "x", r"steps\[0\]: unknown field 'colour'"),
        ("steps.0.prompt", ..., r"steps\[0\]: missing required field 'prompt'"),
        ("steps.0.prompt", "   ", r"steps\[0\]\.prompt: must be 1\.\.32000 characters"),
        ("steps.0.prompt", 42, r"steps\[0\]\.prompt: must be str, got int"),
        ("steps.0.local.op", "teleport", r"steps\[0\]\.local\.op: .*teleport"),
        ("steps.1.local.params.fill", 0.5, r"steps\[1\]\.local\.params\.fill"),
        ("steps.1.local.params.product_fill", 1.7, r"steps\[1\]\.local\.params\.product_fill"),
        ("steps.1.local.params.width", True, r"steps\[1\]\.local\.params\.width"),
        ("steps.1.id", "white", r"steps\[1\]\.id: duplicate step id 'white'"),
        ("steps.1.id", "Bad Id!", r"steps\[1\]\.id: must match"),
        ("output.format", "gif", r"output\.format: must be one of jpeg, png, webp"),
        ("output.quality", 0, r"output\.quality: must be between 1 and 100"),
        ("output.size", "big", r"output\.size: must look like '2000x2000'"),
        ("version", 2, r"version: unsupported recipe version 2"),
        ("name", ..., r"missing required field 'name'"),
        ("steps", [], r"steps: needs at least one step"),
        ("steps.0.mask", "{source_root}/masks/{sku}.png", r"steps\[0\]\.mask: unknown placeholder \{sku\}"),
        ("steps.0.reference_images", ["ok.png", 3], r"steps\[0\]\.reference_images\[1\]: must be a path"),
    ],
)
def test_validation_errors_name_the_field(path, value, expected):
    with pytest.raises(RecipeError, match=expected):
        parse_recipe(_with(path, value), origin="file:///recipes/test.yaml")


def test_error_names_the_file():
    with pytest.raises(RecipeError, match=r"^test\.yaml: "):
        parse_recipe(_with("output.format", "gif"), origin="file:///recipes/test.yaml")


def test_masked_op_requires_a_mask_and_reference_op_a_reference():
    doc = _with("steps.0.local", {"op": "remove_object"})
    with pytest.raises(RecipeError, match=r"steps\[0\]\.mask: local op 'remove_object' edits a masked region"):
        parse_recipe(doc)
    doc = _with("steps.0.local", {"op": "color_match"})
    with pytest.raises(RecipeError, match=r"steps\[0\]\.reference_images: .*needs a reference image"):
        parse_recipe(doc)


def test_not_a_mapping_and_bad_yaml(tmp_path: Path):
    with pytest.raises(RecipeError, match="must be a mapping, got list"):
        parse_recipe([1, 2])
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="broken.yaml: not valid YAML"):
        load_recipe(str(bad))
    with pytest.raises(RecipeError, match="neither a shipped recipe"):
        load_recipe("no_such_recipe")


def test_recipe_file_round_trip(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(VALID))
    recipe = load_recipe(str(path))
    assert recipe.origin == path.as_uri()
    assert recipe.recipe_dir == tmp_path.as_uri()
    assert recipe.fingerprint == parse_recipe(VALID).fingerprint  # location does not change identity


@given(
    fmt=st.sampled_from(["jpeg", "jpg", "png", "webp", "JPEG"]),
    quality=st.integers(1, 100),
    w=st.integers(16, 10_000),
    h=st.integers(16, 10_000),
)
def test_any_valid_output_spec_is_accepted(fmt, quality, w, h):
    recipe = parse_recipe(_with("output", {"format": fmt, "quality": quality, "size": f"{w}x{h}"}))
    assert recipe.output.format in ("jpeg", "png", "webp")
    assert recipe.output.size == f"{w}x{h}" and recipe.output.quality == quality


def test_drift_section_parses_and_is_part_of_the_fingerprint(tmp_path: Path):
    from airflow_image_catalog.recipes import DriftControl, RecipeError, parse_recipe

    data = {"name": "two", "steps": [
        {"id": "a", "prompt": "Make the background white.", "local": {"op": "white_background"}},
        {"id": "b", "prompt": "Warm golden grade.", "local": {"op": "look", "params": {"name": "golden_hour"}}}]}
    plain = parse_recipe(data)
    controlled = parse_recipe({**data, "drift": {"max_phash_distance": 8, "min_product_ssim": 0.7}})
    assert plain.drift is None and controlled.drift == DriftControl(8, 0.7, 1)
    assert plain.fingerprint != controlled.fingerprint
    assert controlled.drift.exceeded({"phash_distance": 9, "product_ssim": 0.9})
    assert controlled.drift.exceeded({"phash_distance": 2, "product_ssim": 0.5})
    assert not controlled.drift.exceeded({"phash_distance": 8, "product_ssim": 0.7})
    with pytest.raises(RecipeError, match=r"drift.max_phash_distance: must be between 0 and 64"):
        parse_recipe({**data, "drift": {"max_phash_distance": 99}})
    with pytest.raises(RecipeError, match=r"drift: unknown field 'threshold'"):
        parse_recipe({**data, "drift": {"threshold": 1}})


def test_rounds_and_regeneration_from_source():
    from airflow_image_catalog.recipes import parse_recipe

    recipe = parse_recipe({"name": "three", "output": {"format": "jpeg", "size": "512x512"}, "steps": [
        {"id": "a", "prompt": "Make the background white.", "local": {"op": "white_background"}, "mask": "subject"},
        {"id": "b", "prompt": "Brighten a little.", "local": {"op": "exposure", "params": {"stops": 0.3}},
         "mask": "subject"},
        {"id": "c", "prompt": "Warm grade.", "local": {"op": "look", "params": {"name": "golden_hour"}}}],
        "drift": {}})
    first = recipe.round(0)
    assert [s.id for s in first.steps] == ["a"] and first.drift is None
    assert first.step_output(first.steps[0]).format == "png"  # intermediate rounds stay lossless
    last = recipe.round(2)
    assert last.step_output(last.steps[0]) == recipe.output
    merged = recipe.regeneration(1, prompt_driven=True)
    assert len(merged.steps) == 1 and merged.steps[0].mask == "subject"
    assert "1. Make the background white." in merged.steps[0].prompt
    assert "2. Brighten a little." in merged.steps[0].prompt
    assert [s.id for s in recipe.regeneration(1, prompt_driven=False).steps] == ["a", "b"]
    assert recipe.regeneration(2, prompt_driven=True).steps[0].mask is None  # masks differ: none
