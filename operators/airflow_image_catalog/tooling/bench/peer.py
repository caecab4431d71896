"""The peer ``make bench`` measures the DAG against: the edits as a short asyncio script on the official SDK.

What a team would write without Airflow: ``openai.AsyncOpenAI`` with its own retries (it honours
``retry-after`` on 429), a semaphore for the requests in flight, ``asyncio.gather`` over every image.
It keeps nothing (no state, no cache, no manifests), so it is the ceiling for throughput on the same
service, rate limit and latency; the DAG's figure is reported as a share of it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path


async def edit_all(base_url: str, api_key: str, model: str, prompt: str, sources: list[Path],
                   in_flight: int) -> dict[str, float]:
    """Edit every source once; wall time, edits per minute and how many failed."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=8, timeout=120)
    gate = asyncio.Semaphore(in_flight)

    async def edit(path: Path) -> bool:
        async with gate:
            answer = await client.images.edit(model=model, prompt=prompt, image=path)
            return bool(base64.b64decode(answer.data[0].b64_json))

    started = time.perf_counter()
    async with client:
        outcomes = await asyncio.gather(*(edit(path) for path in sources), return_exceptions=True)
    wall = time.perf_counter() - started
    failed = sum(outcome is not True for outcome in outcomes)
    return {"images": len(sources), "wall_s": wall, "per_min": (len(sources) - failed) / wall * 60, "failed": failed}


def run(base_url: str, api_key: str, model: str, prompt: str, sources: list[Path], in_flight: int) -> dict[str, float]:
    return asyncio.run(edit_all(base_url, api_key, model, prompt, sources, in_flight))
