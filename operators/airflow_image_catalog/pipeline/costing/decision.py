"""The cost check's decision, before any money is spent: estimate the run, compare with budgets, act by policy.

Pure planning over plain data (no Airflow import): the operator gathers the images (sizes,
cache hits, priorities), the budgets and what the ledger says was spent, and this module
decides ``go``, ``downgrade``, ``cap``, ``skip`` or ``fail`` and explains it in numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_image_catalog.pipeline.costing.pricing.estimate import estimate_recipe

POLICIES = ("fail", "skip", "downgrade", "cap")

#: cheaper settings tried in order by ``downgrade``, each on top of the previous ones
OPENAI_LADDER: tuple[tuple[str, dict[str, Any]], ...] = (
    ("the Batch API route (50% off, results within 24 h)", {"backend": "openai_batch"}),
    ("quality medium", {"quality": "medium"}),
    ("quality low", {"quality": "low"}),
    ("request size 1024x1024 (fitted to the recipe's size locally)", {"size": "1024x1024"}),
    ("model gpt-image-1-mini", {"model": "gpt-image-1-mini"}),
)
BFL_LADDER: tuple[tuple[str, dict[str, Any]], ...] = (("model flux-kontext-pro", {"model": "flux-kontext-pro"}),)
QUALITY_ORDER = ("low", "medium", "high", "auto")


@dataclass(frozen=True)
class Budgets:
    """Limits in USD; None = no limit."""

    run: float | None = None
    day: float | None = None
    month: float | None = None

    def available(self, *, spent_day: float, spent_month: float) -> tuple[float | None, str | None]:
        """What this run may still spend, and which budget limits it."""
        room = {"run": self.run,
                "day": None if self.day is None else self.day - spent_day,
                "month": None if self.month is None else self.month - spent_month}
        limits = {k: max(v, 0.0) for k, v in room.items() if v is not None}
        if not limits:
            return None, None
        name = min(limits, key=limits.get)
        return limits[name], name


@dataclass
class ImageCost:
    image_id: str
    usd: float
    low_usd: float
    high_usd: float
    cache_hit: bool = False
    priority: float = 0.0


@dataclass
class Decision:
    action: str  # go | downgrade | cap | skip | fail
    policy: str
    message: str
    estimate_usd: float
    low_usd: float
    high_usd: float
    images: int
    cache_hits: int
    available_usd: float | None
    limited_by: str | None
    spent_day_usd: float
    spent_month_usd: float
    budgets: dict[str, float | None]
    overrides: dict[str, Any] = field(default_factory=dict)
    downgrades: list[str] = field(default_factory=list)
    kept: list[str] | None = None  # cap: the image ids edited (None: all)
    skipped_budget: list[str] = field(default_factory=list)
    per_image_usd: float = 0.0  # the estimate per paid image (booked when a provider reports no usage)
    per_image_high_usd: float = 0.0  # the mid-run guard's reservation per image: the top of its band
    variants: dict[str, Any] = field(default_factory=dict)  # the same run priced elsewhere (for comparison)
    #: a routed run: its plan's URI, images per candidate and expected figures (the escalation reserve included)
    routing: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _totals(costs: list[ImageCost]) -> tuple[float, float, float]:
    paid = [c for c in costs if not c.cache_hit]
    return (round(sum(c.usd for c in paid), 6), round(sum(c.low_usd for c in paid), 6),
            round(sum(c.high_usd for c in paid), 6))


def ladder_for(backend: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    return {"openai": OPENAI_LADDER, "openai_batch": OPENAI_LADDER[1:], "bfl": BFL_LADDER}.get(backend, ())


def downgrade_steps(backend: str, settings: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Cumulative overrides, cheapest last; steps that would not lower the cost are left out."""
    overrides: dict[str, Any] = {}
    quality = str(settings.get("quality") or "auto")
    for label, change in ladder_for(backend):
        if "quality" in change and quality != "auto" and \
                QUALITY_ORDER.index(change["quality"]) >= QUALITY_ORDER.index(quality):
            continue
        if all(settings.get(k) == v for k, v in change.items()):
            continue
        overrides = {**overrides, **change}
        yield label, overrides


def decide(
    costs: list[ImageCost],
    *,
    policy: str,
    budgets: Budgets,
    spent_day: float,
    spent_month: float,
    reprice: Callable[[dict[str, Any]], list[ImageCost]] | None = None,
    backend: str = "local",
    settings: Mapping[str, Any] | None = None,
) -> Decision:
    """Compare the run's estimate with what may still be spent and act by ``policy``.

    :param costs: per image, cache hits flagged (they cost nothing).
    :param reprice: the same images priced with overrides (``downgrade``).
    """
    if policy not in POLICIES:
        raise ValueError(f"budget policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    usd, low, high = _totals(costs)
    available, limited_by = budgets.available(spent_day=spent_day, spent_month=spent_month)
    paid = [c for c in costs if not c.cache_hit]
    base = Decision(
        action="go", policy=policy, message="", estimate_usd=usd, low_usd=low, high_usd=high, images=len(costs),
        cache_hits=len(costs) - len(paid), available_usd=available, limited_by=limited_by,
        spent_day_usd=round(spent_day, 6), spent_month_usd=round(spent_month, 6), budgets=asdict(budgets),
        per_image_usd=round(usd / len(paid), 6) if paid else 0.0,
        per_image_high_usd=round(high / len(paid), 6) if paid else 0.0,
    )
    # cap sends only what its reservations (the band's top) cover; the other policies judge the estimate
    judged = high if policy == "cap" else usd
    if available is None or judged <= available + 1e-9:
        room = "no budget set" if available is None else f"within the {limited_by} budget (${available:.2f} left)"
        base.message = f"estimate ${usd:.2f} (band ${low:.2f}-${high:.2f}) for {len(paid)} images to edit: {room}"
        return base
    over = f"estimate ${usd:.2f} (band ${low:.2f}-${high:.2f}) exceeds the {limited_by} budget's ${available:.2f} left"
    if policy == "fail":
        base.action, base.message = "fail", f"{over}: failing the run before any paid call"
        return base
    if policy == "skip":
        base.action, base.message = "skip", f"{over}: skipping the run"
        return base
    if policy == "downgrade":
        return _downgrade(base, over, available, reprice, backend, settings or {})
    return _cap(base, over, available, costs)


def _downgrade(base: Decision, over: str, available: float, reprice, backend: str,
               settings: Mapping[str, Any]) -> Decision:
    tried = []
    for label, overrides in downgrade_steps(backend, settings):
        tried.append(label)
        usd, low, high = _totals(reprice(overrides))
        if usd <= available:
            paid = base.images - base.cache_hits
            return Decision(**{**base.to_dict(), "action": "downgrade", "overrides": overrides, "downgrades": tried,
                               "estimate_usd": usd, "low_usd": low, "high_usd": high,
                               "per_image_usd": round(usd / paid, 6) if paid else 0.0,
                               "per_image_high_usd": round(high / paid, 6) if paid else 0.0,
                               "message": f"{over}: downgraded to {', '.join(tried)}: estimate ${usd:.2f}"})
    base.action, base.downgrades = "fail", tried
    base.message = f"{over}, and no downgrade fits ({', '.join(tried) or 'none available for this backend'})"
    return base


def _cap(base: Decision, over: str, available: float, costs: list[ImageCost]) -> Decision:
    """The highest-priority images whose reservations fit; cache hits are free and always kept.

    Each paid image reserves the top of its estimate's band (``high_usd``), not its middle: the
    images kept can then cost more than estimated and the run still stays within the budget.
    """
    kept = [c.image_id for c in costs if c.cache_hit]
    ranked = sorted((c for c in costs if not c.cache_hit), key=lambda c: (-c.priority, c.image_id))
    skipped, chosen, reserved = [], [], 0.0
    for cost in ranked:
        if reserved + cost.high_usd <= available + 1e-9:
            kept.append(cost.image_id)
            chosen.append(cost)
            reserved += cost.high_usd
        else:
            skipped.append(cost.image_id)
    usd, low, high = _totals(chosen)
    base.action, base.kept, base.skipped_budget = "cap", kept, skipped
    base.message = (f"{over}: capped to the {len(chosen)} highest-priority paid images (estimate ${usd:.2f}, "
                    f"reserved at the band's top ${high:.2f}); {len(skipped)} skipped for budget")
    base.estimate_usd, base.low_usd, base.high_usd = usd, low, high
    base.per_image_usd = round(usd / len(chosen), 6) if chosen else 0.0
    base.per_image_high_usd = round(high / len(chosen), 6) if chosen else 0.0
    return base


def price_images(
    items: list[dict[str, Any]],
    recipe: Any,
    backend: str,
    model: str | None,
    settings: Mapping[str, Any],
    *,
    reference_sizes: Mapping[str, tuple[int, int]] | None = None,
    prices: Any = None,
) -> list[ImageCost]:
    """Per image: the recipe's estimate at the size the upload will have (after downscaling).

    :param items: ``{"image_id", "width", "height", "cache_hit", "priority"}``; an unknown size
        (an unreadable upload, which fails before any paid call) costs nothing.
    """
    from airflow_image_catalog.backends.prepare import limits_for, upload_size

    limits = limits_for(backend, model)
    by_size: dict[tuple[int, int], Any] = {}
    costs = []
    for item in items:
        if not item.get("width") or not item.get("height"):
            costs.append(ImageCost(item["image_id"], 0.0, 0.0, 0.0, item.get("cache_hit", False),
                                   item.get("priority", 0.0)))
            continue
        size = upload_size(int(item["width"]), int(item["height"]), limits)
        if size not in by_size:
            by_size[size] = estimate_recipe(recipe, backend, model, source_size=size, reference_sizes=reference_sizes,
                                            settings=settings, prices=prices)
        estimate = by_size[size]
        costs.append(ImageCost(item["image_id"], estimate.usd, estimate.low_usd, estimate.high_usd,
                               item.get("cache_hit", False), item.get("priority", 0.0)))
    return costs


class BudgetGuard:
    """The mid-run guard: an image is sent only if its reservation fits in what is left of the budget.

    The run's spend is the ledger's (every chunk of the run books there) plus what this chunk
    booked since the ledger was last read (re-read at most every ``refresh_s`` seconds). Each image
    admitted holds ``hold_usd`` (the top of its estimate's band) until it lands, so images in flight
    count before they are billed. Reservations live in this process: chunks running at the same time
    see each other's spend once it is booked, not their holds.
    """

    def __init__(self, budget_usd: float, run_spend: Callable[[], float], *, refresh_s: float = 5.0,
                 clock: Callable[[], float] | None = None, hold_usd: float = 0.0):
        self.budget_usd, self.hold_usd = budget_usd, max(0.0, float(hold_usd or 0.0))
        self._run_spend, self._refresh_s, self._clock = run_spend, refresh_s, clock or time.monotonic
        self._base, self._since, self._read_at = 0.0, 0.0, None
        self._held: dict[str, float] = {}
        self._lock = threading.Lock()

    def spent(self) -> float:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh_s:
            self._base, self._since, self._read_at = self._run_spend(), 0.0, now
        return self._base + self._since

    def exhausted(self) -> bool:
        return self.spent() >= self.budget_usd

    def held(self) -> float:
        return sum(self._held.values())

    def admit(self, image_id: str) -> bool:
        """Hold ``hold_usd`` for ``image_id`` if spend + holds + it fit in the budget; False: do not send it."""
        with self._lock:
            spent = self.spent()
            if spent >= self.budget_usd or spent + self.held() + self.hold_usd > self.budget_usd + 1e-9:
                return False
            self._held[image_id] = self.hold_usd
            return True

    def release(self, image_id: str) -> None:
        """``image_id`` landed: its actual cost is booked (``add``), its hold goes."""
        with self._lock:
            self._held.pop(image_id, None)

    def add(self, usd: float) -> None:
        """This chunk booked ``usd`` (it reaches the ledger's total at the next read)."""
        self._since += usd
