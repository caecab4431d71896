"""The default chunking: chunks in whole waves of the edit slots, within Airflow's mapping limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_image_catalog.pipeline.discovery.chunking import (
    MAX_CHUNK_SIZE,
    MAX_MAPPED_CHUNKS,
    MIN_CHUNK_SIZE,
    auto_chunk_size,
    edit_slots,
)


def test_the_bench_sizes():
    assert auto_chunk_size(1000, 8) == 125  # 8 chunks: one wave, every slot busy (make bench)
    assert auto_chunk_size(10_000, 8) == 417  # 24 chunks: three waves of 8, chunks within 500
    assert auto_chunk_size(17, 8) == 17  # the demo: one chunk, not 6 tasks of 3 images
    assert auto_chunk_size(0, 8) == 1


@given(images=st.integers(1, 2_000_000), slots=st.integers(1, 64))
def test_chunks_fill_the_slots_in_whole_waves(images, slots):
    size = auto_chunk_size(images, slots)
    chunks = math.ceil(images / size)
    assert 1 <= chunks <= MAX_MAPPED_CHUNKS
    if size > MIN_CHUNK_SIZE and images <= slots * MAX_CHUNK_SIZE * (MAX_MAPPED_CHUNKS // slots):
        waves = math.ceil(chunks / slots)
        # the last wave is full but for rounding: at most one chunk per slot short of whole waves
        assert chunks > (waves - 1) * slots and slots * waves - chunks < slots
        assert size <= MAX_CHUNK_SIZE
        assert math.ceil(images / (slots * waves)) == size  # every slot of every wave gets a chunk


def test_edit_slots_take_the_tightest_limit():
    assert edit_slots(8) == 8
    assert edit_slots(8, parallelism=4) == 4
    assert edit_slots(8, parallelism=32, pool_slots=6) == 6
    with pytest.raises(ValueError):
        auto_chunk_size(10, 0)
