"""pytest fixtures for the local edit service (import them in a conftest.py).

``edit_service`` is one service per test session; ``service`` hands it to a test
with its counters, jobs and faults reset.
"""

from __future__ import annotations

import io

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
    edit_service.state.reset()
    edit_service.state.api_key = None
    yield edit_service
    edit_service.state.reset()


def product_png(width: int = 96, height: int = 96, color: tuple[int, int, int] = (200, 40, 40), *,
                format: str = "PNG") -> bytes:
    """A small product shot: a coloured box on a plain white backdrop."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((width // 4, height // 5, width * 3 // 4, height * 4 // 5), fill=color)
    buf = io.BytesIO()
    img.save(buf, format)
    return buf.getvalue()
