"""pytest fixtures for the local edit service (import them in a conftest.py).

``edit_service`` is one service per test session; ``service`` hands it to a test
with its counters, performed edits, idempotency keys, jobs and faults reset and its
configuration (api key, rpm, enforcement, latency, key TTL) back at the defaults.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest

from operators.service.server import LocalEditService


@pytest.fixture(scope="session")
def edit_service():
    from operators.service import editor

    editor.edit_pixels([product_png()], "warm up")  # engine imports happen once, not in a timed request
    with LocalEditService(0) as service:
        yield service


@pytest.fixture
def service(edit_service):
    edit_service.state.reset(config=True)
    yield edit_service
    edit_service.state.reset(config=True)


def product_png(width: int = 96, height: int = 96, color: tuple[int, int, int] = (200, 40, 40), *,
                format: str = "PNG", texture: bool = False) -> bytes:
    """A small product shot: a coloured box on a plain white backdrop.

    ``texture`` shades the box with a seeded smooth pattern: a flat box's perceptual hash is
    mostly noise (its low DCT terms vanish), a textured one's is stable, as a photo's is.
    """
    import numpy as np
    from PIL import Image

    pixels = np.full((height, width, 3), 255, np.uint8)
    y0, y1, x0, x1 = height // 5, height * 4 // 5 + 1, width // 4, width * 3 // 4 + 1
    light = np.ones((y1 - y0, x1 - x0, 1), np.float32)
    if texture:
        import cv2

        noise = np.random.default_rng(7).random((y1 - y0, x1 - x0)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), max(width, height) / 32)
        light = (0.5 + 0.5 * (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6))[..., None]
    pixels[y0:y1, x0:x1] = np.clip(np.asarray(color, np.float32) * light + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format)
    return buf.getvalue()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it holds (AssertionError after ``timeout``): waits on facts, not sleeps."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)
