"""The router's choice, its exploration and what it expects, on plain figures."""

from __future__ import annotations

import pytest

from airflow_image_catalog.pipeline.routing.router import (
    PassEstimate,
    best_candidate,
    chain_value,
    escalation_target,
    route_image,
    unit_share,
)

ORDER = ["lite", "standard", "pro"]
PRICES = {"lite": 0.01, "standard": 0.04, "pro": 0.20}


def _estimates(**rates: tuple[int, int]) -> dict[str, PassEstimate]:
    return {name: PassEstimate(*rates[name]) for name in ORDER}


def test_escalation_goes_to_the_next_stronger_candidate_and_stops_at_the_strongest():
    assert [escalation_target(ORDER, name) for name in ORDER] == ["standard", "pro", None]


def test_the_chain_counts_one_escalation_at_its_price_weighted_by_the_chance_it_is_needed():
    chance, usd = chain_value(ORDER, "lite", {"lite": 0.6, "standard": 0.9, "pro": 0.99}, PRICES)
    assert chance == pytest.approx(0.6 + 0.4 * 0.9) and usd == pytest.approx(0.01 + 0.4 * 0.04)
    assert chain_value(ORDER, "pro", {"lite": 0.6, "standard": 0.9, "pro": 0.99}, PRICES) == (0.99, 0.20)


def test_the_cheapest_per_passing_image_among_those_meeting_the_target_wins():
    pass_of = {"lite": 0.30, "standard": 0.90, "pro": 0.99}
    # lite's chain reaches 0.93 for 0.01 + 0.7 x 0.04 = 0.038; standard's 0.999 for 0.04 + 0.1 x 0.2 = 0.06
    assert best_candidate(ORDER, pass_of, PRICES, 0.9) == ("lite", "best")
    # a target lite's chain cannot reach goes to the next cheapest that can
    assert best_candidate(ORDER, pass_of, PRICES, 0.95) == ("standard", "best")


def test_no_candidate_meeting_the_target_falls_back_to_the_most_likely_to_pass():
    pass_of = {"lite": 0.1, "standard": 0.2, "pro": 0.5}
    assert best_candidate(ORDER, pass_of, PRICES, 0.99) == ("standard", "fallback")  # 0.2 + 0.8 x 0.5 = 0.6


def test_a_bucket_where_the_cheap_tier_fails_goes_stronger():
    plain = _estimates(lite=(95, 100), standard=(98, 100), pro=(99, 100))
    text = _estimates(lite=(20, 100), standard=(60, 100), pro=(98, 100))
    assert route_image("a", "white/notext", order=ORDER, estimates=plain, prices=PRICES, target=0.9,
                       explore_share=0).candidate == "lite"
    assert route_image("b", "white/text", order=ORDER, estimates=text, prices=PRICES, target=0.9,
                       explore_share=0).candidate == "standard"


def test_exploration_takes_the_stated_share_deterministically_per_image_and_run():
    estimates = _estimates(lite=(95, 100), standard=(98, 100), pro=(99, 100))

    def routes(salt: str) -> list[str]:
        return [route_image(f"img{i}", "b", order=ORDER, estimates=estimates, prices=PRICES, target=0.9,
                            explore_share=0.1, salt=salt).reason for i in range(2000)]

    first = routes("run-1")
    assert first == routes("run-1")  # a rerun routes every image as before
    share = first.count("explore") / len(first)
    assert 0.08 <= share <= 0.12
    assert routes("run-2") != first  # another run explores other images
    explored = [route_image(f"img{i}", "b", order=ORDER, estimates=estimates, prices=PRICES, target=0.9,
                            explore_share=0.1, salt="run-1") for i in range(2000)]
    assert {r.candidate for r in explored if r.reason == "explore"} == {"standard", "pro"}


def test_unit_share_is_uniform_enough_and_stable():
    values = [unit_share("x", str(i)) for i in range(5000)]
    assert all(0 <= v < 1 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.02
    assert unit_share("x", "1") == unit_share("x", "1")


def test_no_candidates_is_refused():
    with pytest.raises(ValueError, match="at least one candidate"):
        route_image("a", "b", order=[], estimates={}, prices={}, target=0.9)
