"""Pass estimates from the audit trail's chains and the canary's figures."""

from __future__ import annotations

import json

import pytest

from airflow_image_catalog.pipeline.routing.estimates import attempt_outcomes, canary_prior, estimate_table
from airflow_image_catalog.pipeline.routing.figures import CandidateFigures


def _row(event: str, image_id: str, attempts: list[tuple[str, str]], bucket: str = "white/notext") -> dict:
    chain = {"candidate": attempts[0][0], "bucket": bucket,
             "attempts": [{"candidate": c, "verdict": v, "status": "edited"} for c, v in attempts]}
    return {"event": event, "run_key": "r1", "image_id": image_id, "routing_json": json.dumps(chain)}


def test_every_judged_attempt_counts_and_a_reviewer_overrules_the_last_verdict():
    rows = [
        _row("published", "a", [("lite", "pass")]),
        _row("published", "b", [("lite", "quarantined"), ("pro", "pass")]),
        _row("quarantined", "c", [("lite", "quarantined"), ("pro", "quarantined")]),
        _row("approved", "c", [("lite", "quarantined"), ("pro", "quarantined")]),  # a reviewer passed pro's
        {"event": "published", "run_key": "r1", "image_id": "d", "routing_json": None},  # not routed
    ]
    outcomes = attempt_outcomes(rows)
    assert sorted((o["candidate"], o["passed"]) for o in outcomes) == [
        ("lite", False), ("lite", False), ("lite", True), ("pro", True), ("pro", True)]


def test_the_canary_is_the_prior_and_the_audit_adds_to_it():
    figures = [CandidateFigures.of("lite", images=20, passed=10, cost_usd=0.2, seconds=1, target=0.9)]

    class Decision:
        pass

    decision = Decision()
    decision.figures = figures
    prior = canary_prior(decision, ["lite", "pro"])
    assert prior == {"lite": (10.0, 20.0)}
    outcomes = [{"candidate": "lite", "bucket": "white/notext", "passed": True}] * 10
    table = estimate_table(["lite", "pro"], ["white/notext", "busy/text"], outcomes=outcomes, prior=prior)
    assert table["any"]["lite"].passes == 20 and table["any"]["lite"].trials == 30
    assert table["any"]["pro"].probability == 0.5 and table["any"]["pro"].basis == ("no data",)
    # a bucket's own data moves it away from the recipe's estimate; a bucket without data reads as the recipe
    assert table["white/notext"]["lite"].probability > table["any"]["lite"].probability
    assert table["busy/text"]["lite"].probability == pytest.approx(table["any"]["lite"].probability, abs=0.06)


def test_a_bucket_that_fails_a_lot_falls_below_the_recipe_estimate():
    outcomes = ([{"candidate": "lite", "bucket": "plain", "passed": True}] * 40
                + [{"candidate": "lite", "bucket": "text", "passed": False}] * 8)
    table = estimate_table(["lite"], ["plain", "text"], outcomes=outcomes)
    assert table["text"]["lite"].probability < 0.4 < 0.9 < table["plain"]["lite"].probability


def test_the_canarys_per_image_outcomes_count_in_each_images_bucket():
    from airflow_image_catalog.pipeline.routing.estimates import canary_outcomes

    class Decision:
        version = "v1"
        sample = {"features": {"a": "white/notext/normal/small", "b": "white/text/normal/small"}}

    report = {"decision": {"version": "v1"},
              "outcomes": {"lite": {"a": "pass", "b": "canvas,text", "c": "edit:moderation_blocked"},
                           "pro": {"a": "pass", "b": "pass"}}}
    outcomes = canary_outcomes(Decision(), report)
    assert sorted((o["candidate"], o["bucket"], o["passed"]) for o in outcomes) == [
        ("lite", "white/notext/normal/small", True), ("lite", "white/text/normal/small", False),
        ("pro", "white/notext/normal/small", True), ("pro", "white/text/normal/small", True)]
    assert canary_outcomes(Decision(), {**report, "decision": {"version": "v0"}}) == []  # another decision's
    assert canary_outcomes(None, report) == []


def test_a_new_stratum_reads_as_its_backdrop_and_text_bucket_not_the_whole_recipe():
    outcomes = ([{"candidate": "lite", "bucket": "plain/notext/normal/small", "passed": True}] * 30
                + [{"candidate": "lite", "bucket": "plain/text/normal/small", "passed": False}] * 12)
    table = estimate_table(["lite"], ["plain/text/tight/medium", "plain/notext/tight/medium"], outcomes=outcomes)
    assert table["plain/text"]["lite"].probability < 0.25
    # a stratum never seen takes its coarse bucket's estimate: text shots fail, plain ones pass
    assert table["plain/text/tight/medium"]["lite"].probability < 0.35 < table["any"]["lite"].probability
    assert table["plain/notext/tight/medium"]["lite"].probability > 0.8
