"""Check recipe and quality-profile files without running the DAG.

    python -m airflow_image_catalog.config.validate my_recipe.yaml my_profile.yaml

Each file is read as what it looks like (``steps``: a recipe, ``expectations``: a quality profile;
``--kind`` to say), parsed by the same code the DAG's tasks use, and answered with ``ok`` and what it
holds, or the error naming the field. A recipe's own quality profile is checked with it. Exit
status 1 when any file has a problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def kind_of(path: str) -> str:
    """``recipe`` or ``profile``, by the document's top-level keys (a recipe when unsure)."""
    import yaml

    from airflow_image_catalog.storage import normalize_uri, read_bytes

    try:
        data = yaml.safe_load(read_bytes(normalize_uri(path)))
    except Exception:  # noqa: BLE001 - unreadable or not YAML: the recipe loader reports it with its reason
        return "recipe"
    return "profile" if isinstance(data, dict) and "expectations" in data and "steps" not in data else "recipe"


def check_file(path: str, kind: str | None = None) -> tuple[bool, str]:
    """(ok, the line to print) for one recipe or profile file."""
    from airflow_image_catalog.config.run_config import check_recipe_and_profile
    from airflow_image_catalog.pipeline.quality.profiles import ProfileError, load_profile

    kind = kind or kind_of(path)
    if kind == "profile":
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            return False, f"error: {path}: quality profile: {exc}"
        return True, f"ok: {path}: quality profile {profile.name!r}, {len(profile.expectations)} expectations"
    problems, recipe = check_recipe_and_profile(path, None)
    if problems:
        return False, f"error: {path}: " + "; ".join(problems)
    profile = recipe.quality.profile if recipe.quality else None
    return True, (f"ok: {path}: recipe {recipe.name!r}, {len(recipe.steps)} steps "
                  f"({', '.join(step.id for step in recipe.steps)}), quality profile {profile or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.config.validate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="recipe or quality-profile files (paths or URIs)")
    parser.add_argument("--kind", choices=("recipe", "profile"), help="read every file as this kind")
    args = parser.parse_args(argv)
    results = [check_file(path, args.kind) for path in args.files]
    for _, line in results:
        print(line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
