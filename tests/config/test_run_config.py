"""A run's configuration checked up front: each mistake named by its field, all of them at once."""

from __future__ import annotations

import pytest

from airflow_image_catalog.config.run_config import check_run_config, unknown_keys
from airflow_image_catalog.config.validate import main as validate

PARAMS = {"source": "", "workspace": "", "published": "", "recipe": "marketplace_white_square",
          "quality_profile": "", "budget_run_usd": None, "budget_day_usd": None, "budget_month_usd": None,
          "budget_policy": "fail", "rights_policy": "", "rights_sidecar": ""}


@pytest.fixture
def params(tmp_path):
    (tmp_path / "photos").mkdir()
    return {**PARAMS, "source": str(tmp_path / "photos")}


def test_a_good_configuration_has_no_problems(params):
    assert check_run_config({"source": params["source"]}, params) == []


def test_a_misspelt_conf_key_is_named_with_what_it_meant(params):
    assert unknown_keys({"sourc": "/x"}, params) == ["sourc: not a parameter of this DAG (did you mean 'source'?)"]
    [problem] = check_run_config({"sourc": "/x"}, params)
    assert problem.startswith("sourc: ")


@pytest.mark.parametrize("field, value, says", [
    ("recipe", "marketplace_white_squar", "recipe: recipe 'marketplace_white_squar' is neither a shipped recipe"),
    ("quality_profile", "amazon_mian", "quality_profile: "),
    ("budget_run_usd", "ten", "budget_run_usd: 'ten' is not an amount"),
    ("budget_day_usd", -1, "budget_day_usd: -1 is not an amount"),
    ("rights_policy", "strikt", "rights_policy: "),
    ("rights_sidecar", "/nowhere/rights.csv", "rights_sidecar: "),
])
def test_each_mistake_names_its_field(params, field, value, says):
    [problem] = check_run_config({field: value}, {**params, field: value})
    assert problem.startswith(says), problem


def test_a_missing_source_and_a_malformed_recipe_file(params, tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("version: 1\nname: broken\nsteps: [\n")
    conf = {"source": str(tmp_path / "nowhere"), "recipe": str(recipe)}
    problems = check_run_config(conf, {**params, **conf})
    assert [p.split(":")[0] for p in problems] == ["recipe", "source"]
    assert "not valid YAML" in problems[0] and "does not exist" in problems[1]


def test_an_s3_source_in_a_missing_bucket(params, s3_bucket):
    ok = {**params, "source": f"s3://{s3_bucket.name}/incoming"}  # an empty prefix of a bucket exists
    assert check_run_config({}, ok) == []
    missing = {**params, "source": "s3://no-such-bucket-here/incoming"}
    [problem] = check_run_config({}, missing)
    assert problem.startswith("source: s3://no-such-bucket-here/incoming") and "NoSuchBucket" in problem


def test_a_budget_variable_that_is_not_a_number(params):
    problems = check_run_config({}, params, variable=lambda name: "lots" if name == "catalog_budget_month_usd" else None)
    assert problems == ["Variable catalog_budget_month_usd: 'lots' is not an amount in USD (a number >= 0, or empty)"]


def test_validate_cli_answers_for_recipes_and_profiles(tmp_path, capsys):
    from airflow_image_catalog.pipeline.quality.profiles import shipped_profiles
    from airflow_image_catalog.recipes import shipped_recipes

    good = [str(shipped_recipes()["object_removal"]), str(shipped_profiles()["amazon_main"])]
    assert validate(good) == 0
    assert capsys.readouterr().out.count("ok: ") == 2
    bad_profile = tmp_path / "profile.yaml"
    bad_profile.write_text("name: p\nexpectations:\n  - {metric: product_fill, min: high}\n")
    bad_recipe = tmp_path / "recipe.yaml"
    bad_recipe.write_text("version: 1\nname: r\nsteps:\n  - id: a\n    prompt: p\n    local: {op: nope}\n")
    assert validate([*good, str(bad_profile), str(bad_recipe)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith(f"error: {bad_profile}: quality profile: ") and "expectations[0].min" in out[2]
    assert out[3].startswith(f"error: {bad_recipe}: recipe: ") and "steps[0].local.op" in out[3]


@pytest.mark.parametrize("changes, says", [
    ({"routing_candidates": "emulated_tierz"}, "routing_candidates: "),
    ({"routing_candidates": ""}, "routing_candidates: none given, and recipe 'marketplace_white_square' has no canary"),
    ({"routing_candidates": "emulated_tiers", "routing_target": 1.5}, "routing_target: 1.5 is out of range"),
    ({"routing_candidates": "emulated_tiers", "routing_explore_share": "lots"}, "routing_explore_share: must be a number"),
    ({"routing_candidates": "emulated_tiers", "budget_policy": "downgrade"}, "budget_policy: downgrade does not apply"),
])
def test_a_routed_runs_mistakes_are_named_by_field(params, tmp_path, changes, says):
    routed = {**params, "workspace": str(tmp_path / "work"), "routing": True, **changes}
    [problem] = check_run_config({"routing": True, **changes}, routed)
    assert problem.startswith(says), problem
    assert check_run_config({}, {**routed, "routing": False}) == []  # not routed: none of it is read
    assert check_run_config({}, {**params, "workspace": str(tmp_path / "work"), "routing": True,
                                 "routing_candidates": "emulated_tiers"}) == []


@pytest.mark.parametrize("candidates, says", [
    ("emulated_tiers", None),
    ("emulated_tier", "candidates: candidate list 'emulated_tier' is neither a shipped candidate list"),
    ("", "candidates: required: a shipped candidate list's name or a YAML file"),
])
def test_a_canarys_candidate_list_is_checked_by_name(params, candidates, says):
    problems = check_run_config({}, {**params, "candidates": candidates})
    assert problems == [] if says is None else [p for p in problems if p.startswith(says)] == problems != [], problems
