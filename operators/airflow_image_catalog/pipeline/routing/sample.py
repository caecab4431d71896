"""A canary's sample: N images drawn across the strata of the free features, deterministically.

Proportional allocation by largest remainder, at least one image from every stratum while N
allows, so rare kinds (text on the label, busy scenes) are measured at all. Within a stratum the
order is a hash of the seed and each image's content (its SHA-256), so the same seed over the same
source draws the same sample on any worker, and a new seed a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence


def _order(seed: str, sha256: str) -> str:
    return hashlib.sha256(f"{seed}|{sha256}".encode()).hexdigest()


def shuffled(shas: Mapping[str, str], seed: str) -> list[str]:
    """Image ids in the seed's pseudo-random order (by content, so renaming a file changes nothing)."""
    return sorted(shas, key=lambda image_id: (_order(seed, shas[image_id]), image_id))


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """How many of ``n`` each stratum gets: one each first (largest strata first) while ``n`` allows,
    the rest in proportion to size by largest remainder; never more than a stratum holds."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    order = sorted(sizes, key=lambda s: (-sizes[s], s))
    share = {s: 0 for s in sizes}
    for stratum in order[:n]:
        share[stratum] = 1
    left = n - sum(share.values())
    while left > 0:
        room = {s: sizes[s] - share[s] for s in order if sizes[s] > share[s]}
        wanted = {s: n * sizes[s] / total - share[s] for s in room}
        best = max(room, key=lambda s: (wanted[s], sizes[s], s))
        share[best] += 1
        left -= 1
    return share


def stratified_sample(strata: Mapping[str, str], shas: Mapping[str, str], n: int, seed: str) -> list[str]:
    """``n`` image ids across ``strata`` (image id -> stratum key), in the seed's order per stratum.

    :param shas: image id -> the source's SHA-256 (the order within a stratum).
    """
    if n < 1:
        raise ValueError(f"sample size must be at least 1, got {n}")
    members: dict[str, list[str]] = {}
    for image_id in shuffled({i: shas[i] for i in strata}, seed):
        members.setdefault(strata[image_id], []).append(image_id)
    share = allocate({s: len(ids) for s, ids in members.items()}, n)
    chosen = {image_id for s, ids in members.items() for image_id in ids[: share[s]]}
    return [image_id for image_id in shuffled({i: shas[i] for i in strata}, seed) if image_id in chosen]


def pool(shas: Mapping[str, str], size: int, seed: str) -> list[str]:
    """The first ``size`` images in the seed's order: the ones whose features are computed (reading
    every image of a 100,000-image source for a 40-image sample would cost more than the canary)."""
    return shuffled(shas, seed)[:size]


def strata_counts(strata: Mapping[str, str], ids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for image_id in ids:
        counts[strata[image_id]] = counts.get(strata[image_id], 0) + 1
    return dict(sorted(counts.items()))
