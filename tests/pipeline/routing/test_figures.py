"""Wilson intervals and the canary's choice: the cheapest per passing image whose lower bound meets the target."""

from __future__ import annotations

import pytest

from airflow_image_catalog.pipeline.routing.figures import CandidateFigures, choose, wilson_interval


def test_wilson_interval_matches_published_values():
    # Wilson (1927) / Newcombe (1998) example: 81 successes of 263 -> 0.2553 .. 0.3662 at 95 %
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=5e-4)  # all passed: still below 1
    assert wilson_interval(0, 0) == (0.0, 1.0)
    from scipy.stats import binomtest  # SciPy's own Wilson interval (scikit-image depends on SciPy)

    for passed, total in ((0, 5), (3, 7), (19, 20), (37, 40), (250, 300)):
        reference = binomtest(passed, total).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(passed, total) == pytest.approx((reference.low, reference.high), abs=1e-9)
    with pytest.raises(ValueError, match="passed"):
        wilson_interval(3, 2)


def _fig(name, passed, images=40, cost=1.0, target=0.8):
    return CandidateFigures.of(name, images=images, passed=passed, cost_usd=cost, seconds=2.0,
                               failures={"background": images - passed}, target=target)


def test_figures_rates_and_costs():
    f = _fig("lite", 30, cost=0.6)
    assert f.pass_rate == 0.75 and f.cost_per_passing_usd == pytest.approx(0.02)
    assert f.cost_per_image_usd == pytest.approx(0.015) and f.seconds_per_image == 0.05
    assert not f.meets_target  # 30/40: lower bound 0.60
    assert CandidateFigures.from_dict(f.to_dict()) == f
    assert _fig("none", 0).cost_per_passing_usd is None


def test_choose_the_cheapest_that_meets_the_target_by_its_lower_bound():
    lite = _fig("lite", 37, cost=0.4)  # 92.5 %, lower bound 0.80 (just meets 0.8)
    standard = _fig("standard", 39, cost=1.2)
    pro = _fig("pro", 40, cost=3.2)
    assert lite.meets_target
    assert choose([lite, standard, pro])[0] == "lite"
    weak = _fig("lite", 34, cost=0.4)  # 85 %: a point rate above the target, a lower bound below it
    assert choose([weak, standard, pro])[0] == "standard"
    none, why = choose([_fig("lite", 10), _fig("pro", 20)])
    assert none is None and "best: pro" in why
