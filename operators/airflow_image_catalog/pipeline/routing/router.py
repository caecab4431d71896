"""The router: which candidate edits each image, and which one an image that fails the gate escalates to.

Plain decisions over plain data (no Airflow, no I/O): the per-bucket pass estimates come from
:mod:`~airflow_image_catalog.pipeline.routing.estimates` (the audit trail, with the canary's decision
as the prior), the per-image prices from the price table. Candidates are ordered weakest to strongest;
that order is also the escalation order.

For an image in feature bucket ``b``, a candidate ``c`` with pass probability ``p_c`` and price
``u_c``, followed in the escalation order by ``n``, is worth ``E[cost] = u_c + (1 - p_c) u_n`` for a
chance of passing ``P = p_c + (1 - p_c) p_n`` (one escalation, the strongest has none). The router picks,
among the candidates whose ``P`` meets the recipe's target, the one with the lowest expected cost per
passing image ``E[cost] / P``; when none meets it, the one most likely to pass. A small, stated share of
images (``explore_share``) goes to another candidate instead, chosen by a hash of the run and image, so
estimates stay current and a rerun routes every image as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: the share of images sent to another candidate than the best, so every candidate's estimate stays current
DEFAULT_EXPLORE_SHARE = 0.05
#: the bucket of an image whose features are unknown, and of audit records written before buckets
ANY_BUCKET = "any"


@dataclass(frozen=True)
class PassEstimate:
    """What the router believes of one candidate in one bucket: a Beta posterior over its pass rate.

    ``passes`` / ``trials`` are the bucket's own data; the prior is the level above (``prior_mean`` weighed
    as ``prior_weight`` trials), or, at the top, a uniform Beta(1, 1).
    """

    passes: float
    trials: float
    #: where the figures come from (``canary``, ``audit``, ``none``), for the report
    basis: tuple[str, ...] = ()
    prior_mean: float = 0.5
    prior_weight: float = 2.0

    @property
    def probability(self) -> float:
        """The posterior mean: (prior_weight x prior_mean + passes) / (prior_weight + trials)."""
        return (self.prior_weight * self.prior_mean + self.passes) / (self.prior_weight + self.trials)

    @property
    def weight(self) -> float:
        """How many trials the estimate rests on (its data and its prior's)."""
        return self.prior_weight + self.trials


@dataclass(frozen=True)
class Route:
    """Where one image goes and why: the candidate, what the router expected, and the escalation candidate."""

    image_id: str
    bucket: str
    candidate: str
    escalate_to: str | None
    reason: str  # best | explore | fallback (no candidate meets the target)
    expected_pass: float  # with the one escalation
    expected_usd: float  # the candidate's price + the escalation's, weighted by the chance it is needed
    prices: dict[str, float] = field(default_factory=dict)  # every candidate's price for this image

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unit_share(*parts: str) -> float:
    """A number in [0, 1) from ``parts``: the same on every machine and every rerun."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def escalation_target(order: Sequence[str], candidate: str) -> str | None:
    """The next stronger candidate after ``candidate`` (None for the strongest)."""
    index = list(order).index(candidate)
    return order[index + 1] if index + 1 < len(order) else None


def chain_value(order: Sequence[str], candidate: str, pass_of: Mapping[str, float],
                prices: Mapping[str, float]) -> tuple[float, float]:
    """(chance to pass, expected cost) of starting ``candidate`` and escalating once on a failure."""
    first, usd = pass_of[candidate], prices[candidate]
    then = escalation_target(order, candidate)
    if then is None:
        return first, usd
    return first + (1.0 - first) * pass_of[then], usd + (1.0 - first) * prices[then]


def best_candidate(order: Sequence[str], pass_of: Mapping[str, float], prices: Mapping[str, float],
                   target: float) -> tuple[str, str]:
    """(candidate, reason): the lowest expected cost per passing image among those meeting ``target``."""
    values = {name: chain_value(order, name, pass_of, prices) for name in order}
    eligible = [name for name in order if values[name][0] >= target - 1e-12]
    if eligible:
        return min(eligible, key=lambda n: (values[n][1] / max(values[n][0], 1e-12), order.index(n))), "best"
    return max(order, key=lambda n: (values[n][0], -values[n][1])), "fallback"


def route_image(image_id: str, bucket: str, *, order: Sequence[str], estimates: Mapping[str, PassEstimate],
                prices: Mapping[str, float], target: float, explore_share: float = DEFAULT_EXPLORE_SHARE,
                salt: str = "") -> Route:
    """Route one image: the best candidate for its bucket, or (for ``explore_share`` of images) another one.

    :param estimates: candidate -> its pass estimate in the image's bucket.
    :param prices: candidate -> what editing this image costs on it (USD).
    :param salt: mixed into the exploration hash (the run key: each run explores other images; a rerun the same).
    """
    if not order:
        raise ValueError("routing needs at least one candidate")
    pass_of = {name: estimates[name].probability for name in order}
    candidate, reason = best_candidate(order, pass_of, prices, target)
    if len(order) > 1 and unit_share("explore", salt, image_id) < explore_share:
        others = [name for name in order if name != candidate]
        candidate = others[int(unit_share("which", salt, image_id) * len(others))]
        reason = "explore"
    chance, usd = chain_value(order, candidate, pass_of, prices)
    return Route(image_id, bucket, candidate, escalation_target(order, candidate), reason, round(chance, 6),
                 round(usd, 9), {name: round(float(prices[name]), 9) for name in order})


def fixed_value(routes: Sequence[Route], candidate: str, pass_in: Mapping[str, Mapping[str, PassEstimate]]
                ) -> dict[str, float | None]:
    """What sending every routed image to ``candidate`` (no escalation) would be expected to cost and pass."""
    usd = sum(route.prices[candidate] for route in routes)
    passes = sum(pass_in[route.bucket][candidate].probability for route in routes)
    return {"usd": round(usd, 9), "pass_rate": round(passes / len(routes), 6) if routes else None,
            "usd_per_pass": round(usd / passes, 9) if passes else None}
