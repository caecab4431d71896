"""Per-candidate figures of a canary (or any evaluation) and the choice they lead to.

The pass rate's interval is Wilson's score interval: unlike the normal approximation it stays
inside [0, 1] and is honest for small samples and rates near 0 or 1, which is exactly a canary's
situation (a few dozen images, pass rates near the target). The choice is the cheapest candidate
per passing image whose *lower* bound meets the target, so a lucky small sample does not win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: two-sided 95 % normal quantile
Z95 = 1.959963984540054


def wilson_interval(passed: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``passed`` successes out of ``total`` trials; (0, 1) when ``total`` is 0."""
    if total < 0 or not 0 <= passed <= total:
        raise ValueError(f"wilson_interval: need 0 <= passed <= total, got {passed} of {total}")
    if total == 0:
        return 0.0, 1.0
    p = passed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class CandidateFigures:
    """What one candidate did on the sample.

    :param images: images edited (and gated) with it; ``passed``: gate verdict ``pass``.
    :param cost_usd: what its edits cost as booked in the ledger (cache hits are $0).
    :param seconds: wall-clock edit seconds summed over its images.
    :param failures: reason category -> images (gate failures and edit failures alike).
    """

    candidate: str
    images: int
    passed: int
    cost_usd: float
    seconds: float
    failures: dict[str, int] = field(default_factory=dict)
    pass_rate: float = 0.0
    lower: float = 0.0
    upper: float = 1.0
    cost_per_image_usd: float | None = None
    cost_per_passing_usd: float | None = None
    seconds_per_image: float | None = None
    meets_target: bool = False
    #: images whose edit came from the result cache (priced at their usage all the same; no time measured)
    cache_hits: int = 0

    @classmethod
    def of(cls, candidate: str, *, images: int, passed: int, cost_usd: float, seconds: float,
           failures: Mapping[str, int] | None = None, target: float, cache_hits: int = 0) -> CandidateFigures:
        """The figures with the rates, the Wilson bounds and whether the lower bound meets ``target``."""
        lower, upper = wilson_interval(passed, images)
        return cls(candidate, images, passed, round(cost_usd, 9), round(seconds, 4), dict(failures or {}),
                   cache_hits=cache_hits,
                   pass_rate=passed / images if images else 0.0, lower=lower, upper=upper,
                   cost_per_image_usd=round(cost_usd / images, 9) if images else None,
                   cost_per_passing_usd=round(cost_usd / passed, 9) if passed else None,
                   seconds_per_image=round(seconds / images, 4) if images else None,
                   meets_target=images > 0 and lower >= target)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateFigures:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def choose(figures: Sequence[CandidateFigures]) -> tuple[str | None, str]:
    """The cheapest candidate per passing image among those whose lower bound meets the target,
    ties to the earlier (weaker) one; ``None`` and why when none does."""
    eligible = [(f.cost_per_passing_usd or 0.0, index, f) for index, f in enumerate(figures) if f.meets_target]
    if not eligible:
        best = max(figures, key=lambda f: f.lower, default=None)
        why = "no candidate's pass-rate lower bound meets the target"
        return None, why + (f" (best: {best.candidate}, lower bound {best.lower:.3f})" if best else "")
    cost, _, chosen = min(eligible)
    return chosen.candidate, (f"{chosen.candidate}: cheapest per passing image (${cost:.4f}) of "
                              f"{len(eligible)} candidate(s) whose lower bound meets the target "
                              f"(lower bound {chosen.lower:.3f})")
