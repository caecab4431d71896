"""The OpenAI Images edits backend: request shapes and response handling against the local edit service."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from airflow_image_catalog.backends.base import EditError, ImageContext
from airflow_image_catalog.backends.openai_images import OpenAIImagesBackend, nearest_size, validate_size
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.fixtures.service import product_png

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}


def recipe(tmp_path: Path, *, mask=None, references=(), output=None, steps=1):
    data = {
        "name": "t",
        "output": output or {"format": "png"},
        "steps": [{"id": f"s{i}", "prompt": "Apply a warm golden look.", "mask": mask,
                   "reference_images": list(references), "local": {"op": "look", "params": {"name": "warm"}}}
                  for i in range(steps)],
    }
    return parse_recipe(data, origin=(tmp_path / "recipe.yaml").as_uri())


def backend(service, monkeypatch, conn_id="edits", host=None, **extras) -> OpenAIImagesBackend:
    conn = {"conn_type": "image_edit", "host": host or service.openai_base_url, "password": "sk-test-key-42",
            "extra": {"backend": "openai", **FAST, **extras}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return ImageEditHook(conn_id).get_backend()


def context(tmp_path: Path) -> ImageContext:
    return ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri())


def test_one_image_request_shape_and_usage(service, monkeypatch, tmp_path):
    service.state.api_key = "sk-test-key-42"
    result = backend(service, monkeypatch, quality="low", user="catalog").edit(
        product_png(), recipe(tmp_path, output={"format": "jpeg", "quality": 80}), context(tmp_path))
    (request,) = service.state.log
    assert request["path"] == "/v1/images/edits" and request["auth"] == ["authorization"]
    assert [f[:3] for f in request["files"]] == [("image", "image.png", "image/png")]
    fields = request["fields"]
    assert fields["model"] == "gpt-image-2" and fields["quality"] == "low" and fields["user"] == "catalog"
    assert fields["output_format"] == "jpeg" and fields["output_compression"] == "80" and fields["size"] == "auto"
    assert "input_fidelity" not in fields and "background" not in fields
    assert Image.open(io.BytesIO(result.data)).format == "JPEG" and result.attempts == 1
    (usage,) = result.usage
    assert usage["provider"] == "openai" and usage["model"] == "gpt-image-2" and usage["images"] == 1
    assert usage["input_tokens"] == usage["input_image_tokens"] + usage["input_text_tokens"] > 0
    assert usage["output_tokens"] > 0


def test_references_and_a_black_and_white_mask(service, monkeypatch, tmp_path):
    (tmp_path / "ref.png").write_bytes(product_png(color=(20, 20, 200)))
    mask = Image.new("L", (96, 96), 0)
    mask.paste(255, (10, 10, 40, 40))
    mask.save(tmp_path / "mask.png")
    result = backend(service, monkeypatch, model="gpt-image-1.5", input_fidelity="high").edit(
        product_png(), recipe(tmp_path, mask="mask.png", references=["ref.png"]), context(tmp_path))
    (request,) = service.state.log
    assert [f[:3] for f in request["files"]] == [("image[]", "image.png", "image/png"),
                                                 ("image[]", "reference-1.png", "image/png"),
                                                 ("mask", "mask.png", "image/png")]
    assert request["fields"]["input_fidelity"] == "high" and request["fields"]["model"] == "gpt-image-1.5"
    assert result.width == 96


def test_gpt_image_2_never_gets_input_fidelity(service, monkeypatch, tmp_path):
    backend(service, monkeypatch, input_fidelity="high").edit(product_png(), recipe(tmp_path), context(tmp_path))
    assert "input_fidelity" not in service.state.log[0]["fields"]


def test_mask_of_the_wrong_size_fails_before_sending(service, monkeypatch, tmp_path):
    Image.new("L", (50, 50), 255).save(tmp_path / "mask.png")
    with pytest.raises(EditError, match="mask .* is 50x50, image is 96x96") as info:
        backend(service, monkeypatch).edit(product_png(), recipe(tmp_path, mask="mask.png"), context(tmp_path))
    assert not info.value.retryable and service.state.requests() == 0


def test_sizes_are_validated_before_sending(service, monkeypatch):
    assert validate_size("gpt-image-2", "2000x2000") == "2000x2000"
    assert validate_size("gpt-image-1.5", "1536x1024") == "1536x1024"
    for model, size, reason in [("gpt-image-2", "1000x1000", "multiples of 16"),
                                ("gpt-image-2", "3200x960", "1:3"),
                                ("gpt-image-2", "4000x2000", "3840x2160"),
                                ("gpt-image-2", "512x512", "262,144 pixels, must be 655,360 to 8,294,400"),
                                ("gpt-image-2", "3840x2176", "3840x2160"),
                                ("gpt-image-1.5", "2000x2000", "one of")]:
        with pytest.raises(EditError, match=reason):
            validate_size(model, size)
    assert nearest_size("gpt-image-2", 1000, 1000) == "992x992"
    assert nearest_size("gpt-image-2", 6000, 6000) == "2880x2880"
    assert nearest_size("gpt-image-2", 200, 100) == "1152x576"  # raised to the pixel minimum, ratio kept
    assert nearest_size("gpt-image-1.5", 2000, 1000) == "1536x1024"
    with pytest.raises(EditError, match="multiples of 16"):
        backend(service, monkeypatch, size="1000x1000")
    assert service.state.requests() == 0


def test_multi_step_recipe_chains_and_fits_the_output_size(service, monkeypatch, tmp_path):
    result = backend(service, monkeypatch).edit(
        product_png(), recipe(tmp_path, steps=2, output={"format": "png", "size": "200x100"}), context(tmp_path))
    sizes = [r["fields"]["size"] for r in service.state.log]
    assert sizes == ["auto", "1152x576"]  # intermediate auto (PNG), final nearest valid size (>= 655,360 px)
    assert [r["fields"]["output_format"] for r in service.state.log] == ["png", "png"]
    assert (result.width, result.height) == (200, 100) and len(result.usage) == 2 and result.attempts == 2


def test_azure_and_organisation_headers(service, monkeypatch, tmp_path):
    service.state.api_key = "sk-test-key-42"
    # the resource endpoint: the backend adds /openai/deployments/<model>, as the SDK's AzureOpenAI does
    backend(service, monkeypatch, host=service.url, api_type="azure", api_version="2025-04-01-preview",
            organization="org-1", project="proj-1").edit(product_png(), recipe(tmp_path), context(tmp_path))
    (request,) = service.state.log
    assert request["path"] == "/openai/deployments/gpt-image-2/images/edits"
    assert request["auth"] == ["api-key"] and request["query"] == {"api-version": "2025-04-01-preview"}
    assert request["headers"] == {"openai-organization": "org-1", "openai-project": "proj-1"}


def test_openai_connection_type_is_accepted(service, monkeypatch, tmp_path):
    conn = {"conn_type": "openai", "password": "sk-test-key-42",
            "extra": {"openai_client_kwargs": {"base_url": service.openai_base_url}, "max_attempts": 1}}
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", json.dumps(conn))
    found = ImageEditHook("openai_default").get_backend()
    assert isinstance(found, OpenAIImagesBackend) and found.transport.settings.base_url == service.openai_base_url
    found.edit(product_png(), recipe(tmp_path), context(tmp_path))
    assert service.state.requests() == 1


def test_chunk_faults_end_in_per_image_statuses(service, monkeypatch, tmp_path, caplog):
    source = tmp_path / "src"
    source.mkdir()
    for i in range(4):
        (source / f"p{i}.png").write_bytes(product_png(color=(40 * i, 80, 120)))
    (source / "bad.png").write_bytes(b"\x89PNG not really")
    found = discover_images(source.as_uri())
    chunk = ChunkManifest("run", 0, found.source_root, found.items)
    service.state.faults.add(kind="moderation", path="/v1/images/edits", count=1)
    service.state.faults.add(kind="status", status=429, retry_after_ms=10, path="/v1/images/edits", count=2)
    manifest = edit_chunk(chunk, recipe(tmp_path), backend(service, monkeypatch, max_concurrency=1),
                          run_root=(tmp_path / "run").as_uri())
    by_id = {r.image_id: r for r in manifest.items}
    assert manifest.backend == "openai" and manifest.counts() == {"edited": 3, "failed_retryable": 0, "failed_final": 2, "skipped_budget": 0}
    moderated = [r for r in manifest.items if r.error_code == "moderation_blocked"]
    assert len(moderated) == 1 and moderated[0].retryable is False and moderated[0].attempts == 1
    assert "moderation_blocked" in moderated[0].error
    assert by_id["bad"].status == "failed_final" and "not an image" in by_id["bad"].error
    assert sum(r.attempts for r in manifest.items) == service.state.requests() == 6  # 4 images + 2 retries
    assert "sk-test-key-42" not in caplog.text and "sk-test-key-42" not in json.dumps(manifest.to_dict())
