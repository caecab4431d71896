"""How many images each mapped edit task gets when the run does not say: chunks in whole waves of the slots.

A chunk's share of the provider's rate is used only while its task runs, so chunks that leave slots idle
waste the rate: 1,000 images in chunks of 50 are 20 tasks on 8 slots, two full waves and a third of 4
tasks, and reached 0.79 x the rate limit in ``make bench``, while 8 chunks of 125 (one wave) reached
0.98 x. So the chunk count is a multiple of the edit slots, with as few waves as keep a chunk within
``max_size`` (a chunk is one task's memory and one retry's scope). Below ``min_size`` images per chunk a
task's start-up (imports, the gate's Great Expectations context) costs more than the slot it fills, so
small runs get fewer, larger chunks.
"""

from __future__ import annotations

import math

MIN_CHUNK_SIZE = 25
MAX_CHUNK_SIZE = 500
MAX_MAPPED_CHUNKS = 1024  # Airflow's default [core] max_map_length


def auto_chunk_size(images: int, slots: int, *, min_size: int = MIN_CHUNK_SIZE, max_size: int = MAX_CHUNK_SIZE,
                    max_chunks: int = MAX_MAPPED_CHUNKS) -> int:
    """Images per chunk so that the chunks fill ``slots`` edit task slots in whole waves.

    >>> auto_chunk_size(1000, 8), auto_chunk_size(10_000, 8), auto_chunk_size(17, 8)
    (125, 417, 17)
    """
    if slots < 1:
        raise ValueError(f"edit slots must be >= 1, got {slots}")
    if images <= 0:
        return 1
    waves = math.ceil(images / (slots * max_size))
    size = math.ceil(images / (slots * waves))
    return max(size, min(min_size, images), math.ceil(images / max_chunks))


def edit_slots(max_active: int, parallelism: int | None = None, pool_slots: int | None = None) -> int:
    """The edit task instances that can run at once: its ``max_active_tis_per_dag``, capped by the executor's
    ``[core] parallelism`` and the slots of the pool the edit tasks share (where given)."""
    return max(1, min(n for n in (max_active, parallelism, pool_slots) if n))
