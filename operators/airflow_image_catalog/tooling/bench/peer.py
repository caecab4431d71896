"""The peer ``make bench`` measures the DAG against: the edits as a short asyncio script on the official SDK.

What a team would write without Airflow: ``openai.AsyncOpenAI`` with its own retries (it honours
``retry-after`` on 429), a semaphore for the requests in flight, ``asyncio.gather`` over every image, and
a client-side throttle at the account's rate, as OpenAI's cookbook advises for parallel requests
(openai/openai-cookbook ``examples/How_to_handle_rate_limits.ipynb``, which points to its throttling
``api_request_parallel_processor.py``). The throttle is an ``aiolimiter.AsyncLimiter`` at the account's rate
with a bucket of two requests, the rule each edit task's limiter follows at its share
(``backends/http.py``): the comparison is of orchestration, not of pacing. A bucket as deep as the provider's
(a second's share: OpenAI may enforce a per-minute limit per second) would leave no room for the requests
that reach the provider closer together than they left (event-loop and network jitter): tried on 400
images on this loaded machine, it drew 423 429s and lost one image. Without a throttle (``requests_per_minute``
None: the semaphore alone, the naive script) the SDK's retries meet a provider that quantizes its limit:
every refused request comes back after the same ``retry-after-ms``, and some run out of retries.
It keeps nothing (no state, no cache, no manifests), so it is the ceiling for throughput on the same
service, rate limit and latency; the DAG's figure is reported as a share of it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from pathlib import Path


async def edit_all(base_url: str, api_key: str, model: str, prompt: str, sources: list[Path],
                   in_flight: int, requests_per_minute: float | None = None) -> dict[str, float]:
    """Edit every source once; wall time, edits per minute and how many failed."""
    from aiolimiter import AsyncLimiter
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=8, timeout=120)
    gate = asyncio.Semaphore(in_flight)
    throttle = AsyncLimiter(2, 120 / requests_per_minute) if requests_per_minute else contextlib.nullcontext()

    async def edit(path: Path) -> bool:
        async with gate, throttle:
            answer = await client.images.edit(model=model, prompt=prompt, image=path)
            return bool(base64.b64decode(answer.data[0].b64_json))

    started = time.perf_counter()
    async with client:
        outcomes = await asyncio.gather(*(edit(path) for path in sources), return_exceptions=True)
    wall = time.perf_counter() - started
    failed = sum(outcome is not True for outcome in outcomes)
    return {"images": len(sources), "wall_s": wall, "per_min": (len(sources) - failed) / wall * 60, "failed": failed}


def run(base_url: str, api_key: str, model: str, prompt: str, sources: list[Path], in_flight: int,
        requests_per_minute: float | None = None) -> dict[str, float]:
    return asyncio.run(edit_all(base_url, api_key, model, prompt, sources, in_flight, requests_per_minute))
