from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.quality.profiles import (
    ProfileError,
    load_profile,
    parse_profile,
    shipped_profiles,
)


def test_shipped_profiles_load_and_include_edit_integrity():
    assert {"edit_integrity", "preserve", "amazon_main", "shopify", "google_merchant", "ebay"} <= set(
        shipped_profiles()
    )
    integrity = {e.label for e in load_profile("edit_integrity").expectations}
    for name in ("preserve", "amazon_main", "shopify", "google_merchant", "ebay"):
        labels = {e.label for e in load_profile(name).expectations}
        assert integrity <= labels, name
    amazon = {e.label for e in load_profile("amazon_main").expectations}
    assert "0.845 <= product_fill" in amazon and "format in ['jpeg', 'png', 'tiff', 'gif']" in amazon


def test_intents_select_expectations():
    profile = load_profile("edit_integrity")
    assert "seam_score" in {e.metric for e in profile.for_intent("masked")}
    assert "seam_score" not in {e.metric for e in profile.for_intent("reframe")}
    assert "delta_e_preserved" not in {e.metric for e in profile.for_intent("global")}


def test_check_mirrors_gx_semantics():
    profile = parse_profile({"name": "t", "expectations": [
        {"metric": "a", "min": 1, "max": 2}, {"metric": "a", "min": 1.5},
        {"metric": "b", "in": ["x"]}, {"metric": "c", "max": 1, "strict": True}]})
    assert profile.check({"intent": "masked", "a": 1.7, "b": "x", "c": 0.5}) == {"a": True, "b": True, "c": True}
    assert profile.check({"intent": "masked", "a": 1.2, "b": "y", "c": 1}) == {"a": False, "b": False, "c": False}
    assert profile.check({"intent": "masked", "a": None, "b": None, "c": float("nan")}) == {
        "a": None, "b": None, "c": None}


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "t", "expectations": [{"metric": "a"}]}, r"expectations\[0\]: give either min/max or in"),
    ({"name": "t", "expectations": [{"metric": "a", "min": "high"}]}, r"expectations\[0\]\.min: must be a number"),
    ({"name": "t", "expectations": [{"metric": "a", "min": 1, "intents": ["sideways"]}]},
     r"expectations\[0\]\.intents: must be a list drawn from"),
    ({"name": "t", "expectations": [{"metric": "a", "min": 1, "colour": 1}]}, r"expectations\[0\]\.colour: unknown"),
    ({"name": "t"}, r"expectations: a profile needs at least one expectation"),
    ({"expectations": []}, r"name: required"),
    ({"name": "t", "include": ["no_such_profile"], "expectations": []}, r"neither a shipped quality profile"),
])
def test_profile_errors_name_the_field(doc, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(doc, origin="file:///x/mine.yaml")


def test_user_profile_file_can_include_shipped_ones(tmp_path: Path):
    path = tmp_path / "brand.yaml"
    path.write_text("name: brand\ninclude: [preserve]\nexpectations:\n  - {metric: format, in: [jpeg]}\n")
    profile = load_profile(str(path))
    assert profile.name == "brand" and profile.expectations[-1].allowed == ("jpeg",)
    assert len(profile.expectations) == len(load_profile("preserve").expectations) + 1
