"""Routing decisions in object storage: immutable versions, the latest pointer, round trips, bad documents."""

from __future__ import annotations

import json

import pytest

from airflow_image_catalog.pipeline.routing.candidates import load_candidates
from airflow_image_catalog.pipeline.routing.decision import (
    DecisionError,
    RoutingDecision,
    decision_versions,
    latest_decision,
    make_decision,
    read_decision,
    write_decision,
)
from airflow_image_catalog.pipeline.routing.figures import CandidateFigures
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.workspace.layout import WorkspaceLayout


def _decision(passed=(30, 38, 40)) -> RoutingDecision:
    tiers = load_candidates("emulated_tiers")
    figures = [CandidateFigures.of(c.name, images=40, passed=p, cost_usd=cost, seconds=4.0, target=0.8)
               for c, p, cost in zip(tiers, passed, (0.4, 1.0, 2.7), strict=True)]
    return make_decision(load_recipe("marketplace_white_square"), target_pass_rate=0.8, candidates=list(tiers),
                         figures=figures, sample={"image_ids": ["a", "b"], "strata": {"a": "white/notext"}},
                         run={"dag_id": "catalog_canary", "run_id": "manual__1"}, candidate_list="emulated_tiers")


def test_write_then_read_the_latest(tmp_path):
    workspace = str(tmp_path / "work")
    assert latest_decision(workspace, "marketplace_white_square") is None
    written = write_decision(workspace, _decision())
    assert written.chosen == "standard" and written.version and written.created_at
    layout = WorkspaceLayout(workspace)
    uri = layout.routing_decision("marketplace_white_square", written.version)
    assert uri.startswith(layout.routing + "/marketplace_white_square/decisions/")
    assert json.loads((tmp_path / "work" / "routing" / "marketplace_white_square" / "latest.json").read_text())[
        "version"] == written.version
    again = latest_decision(workspace, "marketplace_white_square")
    assert again == written and again.chosen_candidate.overrides["model"] == "emulated-standard"
    assert again.figures_for("pro").passed == 40 and again.sample_ids == ["a", "b"]
    assert read_decision(uri) == written


def test_versions_are_immutable_and_the_pointer_moves(tmp_path):
    workspace = str(tmp_path / "work")
    first = write_decision(workspace, _decision())
    second = write_decision(workspace, _decision(passed=(40, 40, 40)))
    assert second.chosen == "lite" and second.version > first.version
    assert decision_versions(workspace, "marketplace_white_square") == [first.version, second.version]
    assert latest_decision(workspace, "marketplace_white_square").version == second.version
    with pytest.raises(DecisionError, match="immutable"):
        write_decision(workspace, first)
    assert read_decision(WorkspaceLayout(workspace).routing_decision("marketplace_white_square", first.version)) == first


def test_bad_decisions_are_refused():
    good = _decision()
    with pytest.raises(DecisionError, match="chosen"):
        RoutingDecision(**{**good.__dict__, "chosen": "ultra"})
    with pytest.raises(DecisionError, match="target_pass_rate"):
        RoutingDecision(**{**good.__dict__, "target_pass_rate": 1.5})
    with pytest.raises(DecisionError, match="kind"):
        RoutingDecision.from_dict({"recipe": "x"}, origin="d.json")
    with pytest.raises(DecisionError, match="schema"):
        RoutingDecision.from_dict({**good.to_dict(), "schema": 9})
    with pytest.raises(DecisionError, match="malformed"):
        RoutingDecision.from_dict({**good.to_dict(), "candidates": None})
