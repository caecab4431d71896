"""The official openai SDK agrees with the local edit service's images/edits contract."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from tests.fixtures.service import product_png


@pytest.fixture
def client(service):
    service.state.api_key = "sk-sdk-test"
    with openai.OpenAI(base_url=service.openai_base_url, api_key="sk-sdk-test", max_retries=0) as client:
        yield client


def _image(response) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))


def test_one_input_image(client, service):
    response = client.images.edit(model="gpt-image-2", image=("p.png", product_png(), "image/png"),
                                  prompt="Apply a warm golden look.", size="1024x1024", quality="low")
    assert _image(response).size == (1024, 1024)
    assert response.usage.input_tokens == (response.usage.input_tokens_details.image_tokens
                                           + response.usage.input_tokens_details.text_tokens)
    assert response.usage.output_tokens == 196  # gpt-image-2, OpenAI's calculator: 1024x1024 low
    assert response.output_format == "png" and response.size == "1024x1024"
    assert [f[0] for f in service.state.log[0]["files"]] == ["image"]


def test_several_input_images(client, service):
    images = [("a.png", product_png(), "image/png"), ("b.png", product_png(color=(0, 0, 200)), "image/png")]
    response = client.images.edit(model="gpt-image-1.5", image=images, prompt="Replace the background.",
                                  output_format="jpeg", output_compression=70, input_fidelity="high")
    assert _image(response).format == "JPEG"
    assert [f[0] for f in service.state.log[0]["files"]] == ["image[]", "image[]"]


def test_with_a_mask(client, service):
    mask = Image.new("RGBA", (96, 96), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (20, 20, 60, 60))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    response = client.images.edit(model="gpt-image-1.5", image=("p.png", product_png(), "image/png"),
                                  mask=("m.png", buf.getvalue(), "image/png"),
                                  prompt="Recolour the masked area.")
    assert _image(response).size == (96, 96)


def test_errors_parse_as_sdk_exceptions(client, service):
    service.state.faults.add(kind="moderation", path="/v1/images/edits")
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(model="gpt-image-2", image=("p.png", product_png(), "image/png"), prompt="x")
    assert info.value.code == "moderation_blocked"
    bad = openai.OpenAI(base_url=service.openai_base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.images.edit(model="gpt-image-2", image=("p.png", product_png(), "image/png"), prompt="x")
