"""Recipes: named, ordered edit steps that every backend can run.

The format, its validation and loading are in :mod:`airflow_image_catalog.recipes.recipe`; the
shipped recipes (``*.yaml``) and their assets sit in this folder. The names below are the
package's public surface: import them from here.
"""

from __future__ import annotations

from airflow_image_catalog.recipes.recipe import (
    AUTO_MASKS,
    DriftControl,
    LocalOperation,
    OutputSpec,
    QualitySpec,
    Recipe,
    RecipeError,
    RecipeStep,
    load_recipe,
    manifest_entry,
    parse_recipe,
    portable_ref,
    shipped_recipes,
)

__all__ = ["AUTO_MASKS", "DriftControl", "LocalOperation", "OutputSpec", "QualitySpec", "Recipe", "RecipeError",
           "RecipeStep", "load_recipe", "manifest_entry", "parse_recipe", "portable_ref", "shipped_recipes"]
