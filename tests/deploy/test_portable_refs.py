"""Executor independence in what manifests hand on: a recipe is named so that any worker can load it."""

from __future__ import annotations

import shutil
from pathlib import Path

from airflow_image_catalog.recipes import load_recipe, portable_ref


def test_a_shipped_recipe_is_handed_on_by_name_not_by_this_workers_path():
    recipe = load_recipe("marketplace_white_square")
    assert recipe.origin.startswith("file://")  # where this worker's installed package keeps it
    assert portable_ref(recipe) == "marketplace_white_square"  # resolved in each worker's own package
    assert load_recipe(portable_ref(recipe)).fingerprint == recipe.fingerprint


def test_a_recipe_file_is_handed_on_by_its_uri(tmp_path: Path):
    shipped = load_recipe("marketplace_white_square")
    copy = tmp_path / "marketplace_white_square.yaml"  # same name, but the user's own file
    shutil.copy(Path(shipped.origin.removeprefix("file://")), copy)
    recipe = load_recipe(str(copy))
    assert portable_ref(recipe) == recipe.origin == copy.as_uri()
