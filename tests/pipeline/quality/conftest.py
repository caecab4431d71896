"""Fixtures for the quality-metric tests: real local-engine edits of procedural samples.

Rendering and editing cost ~0.5 s per sample, so pairs are built once per session.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench.quality import Pair, global_pair, masked_pair, reframe_pair, sample

#: the samples the tests edit: a box with a text label, a white mug, a red ball
SAMPLES = (0, 2, 3)
#: canvas side of the reframed edits (the benchmark uses 1024; smaller keeps the tests fast)
SIDE = 768


@pytest.fixture(scope="session")
def samples() -> dict[str, tuple]:
    """stem -> (image, truth) for the test samples, at their native sizes."""
    out = {}
    for i in SAMPLES:
        stem, image, truth = sample(i)
        out[stem] = (image, truth)
    return out


@pytest.fixture(scope="session")
def reframe_pairs(samples) -> dict[str, Pair]:
    return {stem: reframe_pair(stem, image, SIDE) for stem, (image, _) in samples.items()}


@pytest.fixture(scope="session")
def masked_pairs(samples) -> dict[str, Pair]:
    return {stem: masked_pair(stem, image, truth) for stem, (image, truth) in samples.items()}


@pytest.fixture(scope="session")
def global_pairs(samples) -> dict[str, Pair]:
    return {stem: global_pair(stem, image) for stem, (image, _) in samples.items()}
