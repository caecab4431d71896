"""A run's configuration checked before anything is listed, edited or paid for: every mistake named at once.

Without it an unknown recipe, a missing source folder or a malformed recipe file failed only in
``discover``, after two retries with back-off (208-382 s), and a misspelt conf key (``sourc``) was
accepted silently, so the run used the defaults. :func:`check_run_config` answers in a second with
one line per problem, each starting with the field it is about; the DAG's first task fails with
them, without retries (a typo does not fix itself).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class RunConfigError(ValueError):
    """The run's configuration cannot work; ``problems`` has one line per field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def unknown_keys(conf: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """A problem for every conf key that is not a param, with the param it most likely meant."""
    known = sorted(known)
    problems = []
    for key in sorted(set(conf) - set(known)):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
        problems.append(f"{key}: not a parameter of this DAG{hint}")
    return problems


def check_source(source: str) -> list[str]:
    """The source location must exist (a folder, or an S3 prefix in a bucket this worker can list)."""
    from airflow_image_catalog.storage import StorageError, location_exists, normalize_uri

    try:
        if not location_exists(normalize_uri(source)):
            return [f"source: {source} does not exist"]
    except (StorageError, ValueError) as exc:
        return [f"source: {source}: {exc}"]
    return []


def check_recipe_and_profile(recipe_ref: str, profile_ref: str | None) -> tuple[list[str], Any]:
    """Load the recipe and the quality profile (the given one, else the recipe's); problems and the recipe."""
    from airflow_image_catalog.pipeline.quality.profiles import ProfileError, load_profile
    from airflow_image_catalog.recipes import RecipeError, load_recipe

    problems, recipe = [], None
    try:
        recipe = load_recipe(recipe_ref)
    except RecipeError as exc:
        problems.append(f"recipe: {exc}")
    profile = profile_ref or (recipe.quality.profile if recipe is not None and recipe.quality else None)
    if profile:
        try:
            load_profile(profile)
        except ProfileError as exc:
            field = "quality_profile" if profile_ref else "recipe (its quality.profile)"
            problems.append(f"{field}: {exc}")
    return problems, recipe


def check_rights(policy_ref: str | None, sidecar_ref: str | None, recipe: Any) -> list[str]:
    """The rights policy (the given one, else the recipe's) must load, and the rights sidecar must parse."""
    from airflow_image_catalog.pipeline.rights.metadata import RightsMetadataError
    from airflow_image_catalog.pipeline.rights.policy import RightsPolicyError, load_policy
    from airflow_image_catalog.pipeline.rights.sidecar import load_sidecar
    from airflow_image_catalog.storage import StorageError

    problems = []
    try:
        load_policy(policy_ref or (recipe.rights if recipe is not None else None))
    except RightsPolicyError as exc:
        problems.append(f"{'rights_policy' if policy_ref else 'recipe (its rights)'}: {exc}")
    try:
        load_sidecar(sidecar_ref or None)
    except (RightsMetadataError, StorageError, OSError) as exc:
        problems.append(f"rights_sidecar: {exc}")
    return problems


def check_budgets(params: Mapping[str, Any], variable: Callable[[str], Any]) -> list[str]:
    """Each budget param must be empty or an amount >= 0; an empty one falls back to its Variable, checked alike."""
    from airflow_image_catalog.pipeline.costing.check import BUDGET_VARIABLES, budget_amount

    def bad(field: str, value: Any) -> str:
        return f"{field}: {value!r} is not an amount in USD (a number >= 0, or empty)"

    problems = []
    for name, variable_name in BUDGET_VARIABLES.items():
        param = f"budget_{name}_usd"
        try:
            if budget_amount(params.get(param)) is not None:
                continue  # set: its Variable is not read
        except (TypeError, ValueError):
            problems.append(bad(param, params.get(param)))
            continue
        fallback = variable(variable_name)
        try:
            budget_amount(fallback)
        except (TypeError, ValueError):
            problems.append(bad(f"Variable {variable_name}", fallback))
    return problems


def check_routing(params: Mapping[str, Any], recipe: Any) -> list[str]:
    """A routed run's settings: the candidate list loads (or the recipe has a canary decision to take it from),
    the target and exploration share are in range, and the budget policy is one a routed run takes."""
    from airflow_image_catalog.config.params import as_bool

    if not as_bool(params.get("routing") or False, "routing"):
        return []
    from airflow_image_catalog.pipeline.routing.candidates import CandidateError, load_candidates
    from airflow_image_catalog.pipeline.routing.decision import DecisionError, latest_decision
    from airflow_image_catalog.pipeline.routing.plan import no_candidates, policy_problem, setting_problem

    problems = []
    ref = params.get("routing_candidates") or None
    if ref:
        try:
            load_candidates(str(ref))
        except CandidateError as exc:
            problems.append(f"routing_candidates: {exc}")
    elif recipe is not None and params.get("workspace"):
        try:
            if latest_decision(str(params["workspace"]), recipe.name) is None:
                problems.append(no_candidates(recipe.name))
        except DecisionError as exc:
            problems.append(f"routing_candidates: the recipe's canary decision cannot be read: {exc}")
    problems += [problem for name in ("routing_target", "routing_explore_share")
                 if (problem := setting_problem(name, params.get(name)))]
    if problem := policy_problem(str(params.get("budget_policy") or "")):
        problems.append(problem)
    return problems


def check_canary(params: Mapping[str, Any]) -> list[str]:
    """A canary's candidate list loads (``catalog_canary``'s ``candidates``: a shipped name or a YAML file)."""
    if "candidates" not in params:
        return []
    from airflow_image_catalog.pipeline.routing.candidates import CandidateError, load_candidates

    ref = str(params["candidates"] or "")
    if not ref:
        return ["candidates: required: a shipped candidate list's name or a YAML file"]
    try:
        load_candidates(ref)
    except CandidateError as exc:
        return [f"candidates: {exc}"]
    return []


def check_run_config(conf: Mapping[str, Any], params: Mapping[str, Any], *,
                     declared: Iterable[str] | None = None,
                     variable: Callable[[str], Any] = lambda name: None,
                     backend: Any = None) -> list[str]:
    """Every problem with a catalog_refresh (or catalog_canary) run's configuration (empty: it can run).

    :param conf: what the run was triggered with (only its keys are checked against ``declared``).
    :param params: the run's params, conf merged over the defaults.
    :param declared: the DAG's own params (Airflow merges every conf key into the run's params, known or
        not); default: the keys of ``params``.
    :param variable: reads an Airflow Variable (the budgets' fallback); default: none set.
    :param backend: the edit backend the run's connection builds, when at hand: the recipe's prompts are
        checked against its provider's limit (see ``backends.base.prompt_problems``).
    """
    problems = unknown_keys(conf, params if declared is None else declared)
    found, recipe = check_recipe_and_profile(str(params.get("recipe") or ""), params.get("quality_profile") or None)
    problems += found
    if recipe is not None and backend is not None:
        from airflow_image_catalog.backends.base import prompt_problems

        problems += [f"recipe: {problem}" for problem in prompt_problems(recipe, backend)]
    problems += check_rights(params.get("rights_policy") or None, params.get("rights_sidecar") or None, recipe)
    if "source" in params:
        problems += check_source(str(params["source"]))
    problems += check_budgets(params, variable)
    problems += check_routing(params, recipe)
    problems += check_canary(params)
    return problems
