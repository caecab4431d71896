"""Stratified sampling: every stratum while N allows, proportional after, deterministic by seed and content."""

from __future__ import annotations

import hashlib

import pytest

from airflow_image_catalog.pipeline.routing.sample import allocate, pool, strata_counts, stratified_sample


def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_allocation_covers_rare_strata_then_goes_by_size():
    assert allocate({"a": 80, "b": 15, "c": 5}, 10) == {"a": 8, "b": 1, "c": 1}  # 8 / 1.5 / 0.5 by size; c gets its one
    assert allocate({"a": 80, "b": 15, "c": 5}, 2) == {"a": 1, "b": 1, "c": 0}
    assert allocate({"a": 3, "b": 1}, 10) == {"a": 3, "b": 1}  # N above the source: everything
    assert sum(allocate({str(i): i + 1 for i in range(7)}, 13).values()) == 13


def test_sample_is_deterministic_and_follows_content_not_names():
    strata = {f"img{i}": ("text" if i % 4 == 0 else "plain") for i in range(40)}
    shas = {f"img{i}": _sha(i) for i in range(40)}
    first = stratified_sample(strata, shas, 8, "s1")
    assert first == stratified_sample(strata, shas, 8, "s1")
    assert first != stratified_sample(strata, shas, 8, "s2")
    assert strata_counts(strata, first) == {"plain": 6, "text": 2}
    renamed = {f"new{k[3:]}": v for k, v in strata.items()}
    again = stratified_sample(renamed, {f"new{k[3:]}": v for k, v in shas.items()}, 8, "s1")
    assert [i[3:] for i in again] == [i[3:] for i in first]
    assert pool(shas, 5, "s1") == pool(shas, 40, "s1")[:5]
    with pytest.raises(ValueError, match="at least 1"):
        stratified_sample(strata, shas, 0, "s1")
