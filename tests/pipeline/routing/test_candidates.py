"""Candidate lists: the shipped emulated tiers, validation that names the field, escalation order."""

from __future__ import annotations

import pytest

from airflow_image_catalog.pipeline.routing.candidates import (
    Candidate,
    CandidateError,
    load_candidates,
    parse_candidates,
)


def _doc(*candidates: dict, **top) -> dict:
    return {"version": 1, "candidates": list(candidates), **top}


def test_shipped_emulated_tiers_are_ordered_weakest_first():
    tiers = load_candidates("emulated_tiers")
    assert tiers.names == ("lite", "standard", "pro")
    assert all(c.overrides["model"].startswith("emulated-") for c in tiers)
    assert tiers.stronger("lite").name == "standard" and tiers.stronger("pro") is None
    assert "EMULATION" in tiers.note


def test_a_list_from_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("version: 1\ncandidates:\n"
                    "  - {name: mini-batch, overrides: {backend: openai_batch, model: gpt-image-1-mini, quality: low}}\n"
                    "  - {name: two-high, overrides: {backend: openai, model: gpt-image-2, quality: high, "
                    "size: 1024x1024}}\n")
    loaded = load_candidates(str(path))
    assert loaded.name == "mine"
    assert loaded.candidates[0] == Candidate("mini-batch", {"backend": "openai_batch", "model": "gpt-image-1-mini",
                                                            "quality": "low"})
    assert loaded.candidates[0].backend == "openai_batch"
    assert Candidate.from_dict(loaded.candidates[1].to_dict()) == loaded.candidates[1]


@pytest.mark.parametrize(("doc", "where"), [
    (_doc(), "candidates"),
    ({"candidates": [{"name": "a", "overrides": {"model": "m"}}]}, "version"),
    (_doc({"name": "a", "overrides": {"model": "m"}}, extra=1), "extra"),
    (_doc({"overrides": {"model": "m"}}), "candidates[0].name"),
    (_doc({"name": "a", "overrides": {"model": "m"}}, {"name": "a", "overrides": {"model": "n"}}), "candidates[1].name"),
    (_doc({"name": "a"}), "candidates[0].overrides"),
    (_doc({"name": "a", "overrides": {"api_key": "sk-x"}}), "candidates[0].overrides.api_key"),
    (_doc({"name": "a", "overrides": {"backend": "dalle"}}), "candidates[0].overrides.backend"),
    (_doc({"name": "a", "overrides": {"quality": "ultra"}}), "candidates[0].overrides.quality"),
    (_doc({"name": "a", "overrides": {"size": "big"}}), "candidates[0].overrides.size"),
    (_doc({"name": "a", "overrides": {"n": 0}}), "candidates[0].overrides.n"),
    (_doc({"name": "a", "overrides": {"model": ""}}), "candidates[0].overrides.model"),
    (_doc({"name": "a", "overrides": {"model": "m"}, "colour": "red"}), "candidates[0].colour"),
])
def test_bad_lists_name_the_field(doc, where):
    with pytest.raises(CandidateError, match=rf"^mine\.yaml: {__import__('re').escape(where)}: "):
        parse_candidates(doc, origin="file:///x/mine.yaml")


def test_unknown_reference_says_what_is_shipped():
    with pytest.raises(CandidateError, match="emulated_tiers"):
        load_candidates("no_such_list")
    with pytest.raises(CandidateError, match="required"):
        load_candidates("")
