"""Wire conformance: our OpenAI backends send what the official ``openai`` SDK sends for the same edit.

Each case sends one edit through our backend (built from an Airflow connection, as in production)
and the same edit through ``openai.OpenAI(...).images.edit`` (files given as named paths, the way
the SDK's README uploads them) to a loopback recorder, then compares method, path, query, auth
header, every field, and every file part's name, filename, content type and bytes. The expected
SDK arguments are written out from the API's rules in each case, not computed by our code.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import typing
from pathlib import Path

import openai
import pytest
from PIL import Image

from airflow_image_catalog.backends.base import EditError, ImageContext
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.tooling.samples import product_png

KEY = "sk-wire-test-123456"
PROMPT = "Put the product on a pure white background."
FLEXIBLE = ("gpt-image-2", "gpt-image-2-2026-04-21")
MODELS = (*FLEXIBLE, "gpt-image-1.5", "gpt-image-1-mini")
EXT = {"png": "png", "jpeg": "jpg", "webp": "webp"}
#: (source format, reference formats, mask): single images, references, masks, every image format
INPUTS = [("png", (), False), ("jpeg", (), False), ("webp", (), True), ("png", ("jpeg",), False),
          ("jpeg", ("png", "webp"), True)]


def _encode(fmt: str, color=(200, 60, 40)) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(product_png(color=color))).convert("RGB").save(buf, fmt.upper())
    return buf.getvalue()


def _options(model: str) -> list[tuple[dict, dict, dict]]:
    """(connection extras, recipe output, the SDK arguments they mean) for one model."""
    flexible = model in FLEXIBLE
    fidelity = {} if flexible else {"input_fidelity": "low"}
    return [
        ({}, {"format": "png"}, {"n": 1, "quality": "auto", "size": "auto", "output_format": "png"}),
        ({"quality": "low", "n": 3}, {"format": "jpeg", "quality": 80},
         {"n": 3, "quality": "low", "size": "auto", "output_format": "jpeg", "output_compression": 80}),
        ({"quality": "high", "background": "opaque", "safety_identifier": "user-hash-1"},
         {"format": "webp", "quality": 60},
         {"n": 1, "quality": "high", "size": "auto", "output_format": "webp", "output_compression": 60,
          "background": "opaque", "safety_identifier": "user-hash-1"}),
        ({"quality": "medium", "background": "transparent", "user": "user-7"}, {"format": "png"},
         {"n": 1, "quality": "medium", "size": "auto", "output_format": "png", "background": "transparent",
          "user": "user-7"}),
        ({"size": "1024x1536"}, {"format": "png"}, {"n": 1, "quality": "auto", "size": "1024x1536",
                                                     "output_format": "png"}),
        # the recipe's output size: gpt-image-2 takes it as is (sides /16, 960,000 px, 3:2); the others
        # take the fixed landscape size nearest its ratio
        ({}, {"format": "png", "size": "1200x800"},
         {"n": 1, "quality": "auto", "size": "1200x800" if flexible else "1536x1024", "output_format": "png"}),
        # the SDK's rule for gpt-image-2 is "omit this parameter"
        ({"input_fidelity": "low"}, {"format": "png"},
         {"n": 1, "quality": "auto", "size": "auto", "output_format": "png", **fidelity}),
        ({"input_fidelity": "high"} if model != "gpt-image-1-mini" else {"input_fidelity": "low"}, {"format": "png"},
         {"n": 1, "quality": "auto", "size": "auto", "output_format": "png",
          **({} if flexible else {"input_fidelity": "high" if model != "gpt-image-1-mini" else "low"})}),
    ]


CASES = [(model, inputs, option) for model in MODELS
         for inputs, option in itertools.product(INPUTS, range(len(_options(model))))]


def _files(tmp_path: Path, source_fmt: str, refs: tuple[str, ...], mask: bool):
    """The source, reference and mask files a user has, and what each holds."""
    source = _encode(source_fmt)
    (tmp_path / f"image.{EXT[source_fmt]}").write_bytes(source)
    references = []
    for i, fmt in enumerate(refs, 1):
        path = tmp_path / f"reference-{i}.{EXT[fmt]}"
        path.write_bytes(_encode(fmt, color=(20 * i, 90, 200)))
        references.append(path)
    if mask:  # the recipe's mask: white where the edit goes
        drawn = Image.new("L", (96, 96), 0)
        drawn.paste(255, (8, 8, 60, 60))
        drawn.save(tmp_path / "recipe-mask.png")
        # what the API wants: RGBA, alpha 0 where the edit goes (drawn here, independently of the backend)
        rgba = Image.new("RGBA", (96, 96), (0, 0, 0, 255))
        rgba.paste((0, 0, 0, 0), (8, 8, 60, 60))
        rgba.save(tmp_path / "mask.png")
    return source, references


def _recipe(tmp_path: Path, refs: list[Path], mask: bool, output: dict):
    step = {"id": "s1", "prompt": PROMPT, "mask": "recipe-mask.png" if mask else None,
            "reference_images": [p.name for p in refs], "local": {"op": "white_background", "params": {}}}
    return parse_recipe({"name": "wire", "output": output, "steps": [step]},
                        origin=(tmp_path / "recipe.yaml").as_uri())


def _backend(monkeypatch, base_url: str, backend: str = "openai", **extras):
    conn = {"conn_type": "image_edit", "host": base_url, "password": KEY,
            "extra": {"backend": backend, "max_attempts": 1, **extras}}
    monkeypatch.setenv("AIRFLOW_CONN_WIRE", json.dumps(conn))
    return ImageEditHook("wire").get_backend()


def _comparable(recorded):
    """The request with each mask reduced to its pixels (PNG encoders may differ, alpha may not)."""
    shape = recorded.shape()
    files = []
    for name, filename, content_type, data in shape["files"]:
        if name == "mask":
            with Image.open(io.BytesIO(data)) as img:
                data = (img.format, img.mode, img.size, img.getchannel("A").tobytes())
        files.append((name, filename, content_type, data))
    return {**shape, "files": files}


@pytest.mark.parametrize(("model", "inputs", "option"), CASES,
                         ids=[f"{m}-{i[0]}{'+' + '+'.join(i[1]) if i[1] else ''}{'-mask' if i[2] else ''}-o{o}"
                              for m, i, o in CASES])
def test_images_edit_matches_the_sdk(model, inputs, option, recorder, monkeypatch, tmp_path):
    source_fmt, refs, mask = inputs
    extras, output, sdk_args = _options(model)[option]
    source, references = _files(tmp_path, source_fmt, refs, mask)
    ours = _backend(monkeypatch, recorder.url + "/v1", model=model, **extras)
    ours.edit(source, _recipe(tmp_path, references, mask, output),
              ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri()))
    (sent,) = recorder.take()

    images = [tmp_path / f"image.{EXT[source_fmt]}", *references]
    with openai.OpenAI(base_url=recorder.url + "/v1", api_key=KEY, max_retries=0) as client:
        client.images.edit(image=images if references else images[0], prompt=PROMPT, model=model,
                           **({"mask": tmp_path / "mask.png"} if mask else {}), **sdk_args)
    (reference,) = recorder.take()
    assert _comparable(sent) == _comparable(reference)
    assert sent.method == "POST" and sent.path == "/v1/images/edits" and sent.auth == ["authorization"]
    for _, filename, content_type, _ in sent.files:  # never application/octet-stream, never a bare name
        assert content_type.startswith("image/") and filename.rsplit(".", 1)[-1] in ("png", "jpg", "webp")


def test_every_parameter_and_model_family_is_covered():
    """The cases above reach every value of every field we send, for every model family."""
    sent = {}
    for model in MODELS:
        for _, _, sdk in _options(model):
            for name, value in sdk.items():
                sent.setdefault(name, set()).add(value)
    assert sent["quality"] == {"low", "medium", "high", "auto"}
    assert sent["background"] == {"transparent", "opaque"} and sent["output_format"] == {"png", "jpeg", "webp"}
    assert sent["input_fidelity"] == {"low", "high"} and sent["n"] == {1, 3}
    assert {"auto", "1024x1536", "1200x800", "1536x1024"} <= sent["size"]
    sdk_fields = set(typing.get_type_hints(openai.types.image_edit_params.ImageEditParamsBase))
    assert set(sent) | {"image", "mask", "prompt", "model"} <= sdk_fields


#: every parameter we send and its values (None: not set on the connection / the recipe's default)
PARAMETERS = [("quality", (None, "low", "medium", "high", "auto")), ("background", (None, "transparent", "opaque", "auto")),
              ("format", ("png", "jpeg", "webp")), ("n", (1, 3, 10)), ("size", (None, "1024x1536", "recipe")),
              ("input_fidelity", (None, "low", "high")), ("safety_identifier", (None, "user-hash-1")),
              ("user", (None, "user-7"))]


_ORDER = {name: i for i, (name, _) in enumerate(PARAMETERS)}


def _pair(a: tuple, b: tuple) -> tuple:
    return (a, b) if _ORDER[a[0]] < _ORDER[b[0]] else (b, a)


def _pairs(row: dict) -> set:
    items = sorted(row.items(), key=lambda item: _ORDER[item[0]])
    return {_pair(a, b) for i, a in enumerate(items) for b in items[i + 1:]}


def refused(model: str, row: dict) -> str | None:
    """The API's refusal of a (partial) row, written from its rules: transparency needs png or webp;
    gpt-image-1-mini reads inputs at low fidelity only."""
    if row.get("background") == "transparent" and row.get("format") == "jpeg":
        return "background 'transparent' needs output format png or webp"
    if model == "gpt-image-1-mini" and row.get("input_fidelity") == "high":
        return "input_fidelity 'high' is not supported"
    return None


def all_pairs(model: str) -> set:
    """Every pair of values of two parameters the API takes together for ``model``."""
    return {_pair((a, x), (b, y)) for i, (a, xs) in enumerate(PARAMETERS) for b, ys in PARAMETERS[i + 1:]
            for x in xs for y in ys if refused(model, {a: x, b: y}) is None}


def pairwise_rows(model: str) -> list[dict]:
    """Valid rows in which every value of every parameter meets every value of every other one that
    the API takes with it (a greedy covering array: deterministic, about 20 rows instead of the
    6,480 of the full product)."""
    wanted, rows = all_pairs(model), []
    while wanted:
        first, second = min(wanted, key=repr)  # seed each row with an uncovered pair
        row = dict([first, second])
        for name, values in PARAMETERS:  # then each other parameter: the valid value meeting most uncovered pairs
            if name not in row:
                row[name] = max((v for v in values if refused(model, {**row, name: v}) is None),
                                key=lambda v, name=name: sum(_pair((name, v), item) in wanted for item in row.items()))
        wanted -= _pairs(row)
        rows.append(row)
    return rows


def _expected(model: str, row: dict) -> tuple[dict, dict, dict]:
    """(connection extras, recipe output, the SDK arguments the API's rules make of them) for one row."""
    flexible = model in FLEXIBLE
    extras = {k: row[k] for k in ("quality", "background", "input_fidelity", "safety_identifier", "user")
              if row[k] is not None}
    extras["n"] = row["n"]
    output = {"format": row["format"], **({"quality": 70} if row["format"] != "png" else {})}
    if row["size"] == "recipe":
        output["size"] = "1200x800"
    elif row["size"]:
        extras["size"] = row["size"]
    sdk = {"n": row["n"], "quality": row["quality"] or "auto", "output_format": row["format"],
           "size": {None: "auto", "1024x1536": "1024x1536"}.get(row["size"], "1200x800" if flexible else "1536x1024")}
    if row["format"] != "png":
        sdk["output_compression"] = 70
    if row["background"]:
        sdk["background"] = row["background"]
    if row["input_fidelity"] and not flexible:  # gpt-image-2 reads at high fidelity: the SDK says omit it
        sdk["input_fidelity"] = row["input_fidelity"]
    sdk.update({k: row[k] for k in ("safety_identifier", "user") if row[k]})
    return extras, output, sdk


@pytest.mark.parametrize("model", MODELS)
def test_every_pair_of_parameter_values_matches_the_sdk(model, recorder, monkeypatch, tmp_path):
    """Every value of each parameter with every value of each other the API takes with it, per model
    family, against the SDK; each combination the API refuses is refused by our backend before
    anything is sent (a transparent jpeg; ``input_fidelity`` high on gpt-image-1-mini)."""
    rows = pairwise_rows(model)
    assert set().union(*map(_pairs, rows)) == all_pairs(model) and all(refused(model, r) is None for r in rows)
    source, _ = _files(tmp_path, "png", (), False)
    context = ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri())
    with openai.OpenAI(base_url=recorder.url + "/v1", api_key=KEY, max_retries=0) as client:
        for row in rows:
            extras, output, sdk_args = _expected(model, row)
            ours = _backend(monkeypatch, recorder.url + "/v1", model=model, **extras)
            ours.edit(source, _recipe(tmp_path, [], False, output), context)
            (sent,) = recorder.take()
            client.images.edit(image=tmp_path / "image.png", prompt=PROMPT, model=model, **sdk_args)
            (reference,) = recorder.take()
            assert _comparable(sent) == _comparable(reference), row
    base = {"quality": None, "background": None, "format": "png", "n": 1, "size": None, "input_fidelity": None,
            "safety_identifier": None, "user": None}
    bad = [{**base, "background": "transparent", "format": "jpeg"}, {**base, "input_fidelity": "high"}]
    for row in bad:
        reason = refused(model, row)
        if reason is None:
            continue
        extras, output, _ = _expected(model, row)
        with pytest.raises(EditError, match=reason):
            _backend(monkeypatch, recorder.url + "/v1", model=model, **extras).edit(
                source, _recipe(tmp_path, [], False, output), context)
        assert recorder.take() == []


def test_a_model_that_was_shut_down_is_refused_at_the_connection(monkeypatch, recorder):
    for model, date in [("gpt-image-1", "2026-10-23"), ("gpt-image-1-2025-04-23", "2026-10-23"),
                        ("dall-e-2", "2026-05-12"), ("dall-e-3", "2026-05-12")]:
        with pytest.raises(EditError, match=f"shut down on {date}.*use gpt-image-2") as info:
            _backend(monkeypatch, recorder.url + "/v1", model=model)
        assert info.value.code == "model_shut_down"
    with pytest.raises(EditError, match="input_fidelity 'high' is not supported by gpt-image-1-mini"):
        _backend(monkeypatch, recorder.url + "/v1", model="gpt-image-1-mini", input_fidelity="high")
    for extras, field in [({"n": 11}, "n must be between 1 and 10"), ({"quality": "ultra"}, "quality must be one of"),
                          ({"background": "clear"}, "background must be one of")]:
        with pytest.raises(EditError, match=field):
            _backend(monkeypatch, recorder.url + "/v1", **extras)
    assert recorder.take() == []


# -- Azure OpenAI: the SDK's AzureOpenAI client and the v1 API ----------------------------------------

AZURE = [
    # (our connection: host suffix + extras, the SDK client that sends the same edit)
    ("/openai/deployments/catalog-edits", {"api_type": "azure", "api_version": "2025-04-01-preview"},
     lambda url: openai.AzureOpenAI(azure_endpoint=url, azure_deployment="catalog-edits",
                                    api_version="2025-04-01-preview", api_key=KEY, max_retries=0), "catalog-edits"),
    ("", {"api_type": "azure", "api_version": "2025-04-01-preview", "model": "gpt-image-2"},
     lambda url: openai.AzureOpenAI(azure_endpoint=url, api_version="2025-04-01-preview", api_key=KEY,
                                    max_retries=0), "gpt-image-2"),
    ("/openai/v1", {"api_type": "azure", "model": "gpt-image-2"},
     lambda url: openai.OpenAI(base_url=url + "/openai/v1", api_key=KEY, max_retries=0), "gpt-image-2"),
]


@pytest.mark.parametrize(("suffix", "extras", "client", "model"), AZURE, ids=["deployment", "endpoint", "v1"])
def test_azure_paths_match_the_sdk(suffix, extras, client, model, recorder, monkeypatch, tmp_path):
    source, _ = _files(tmp_path, "png", (), False)
    ours = _backend(monkeypatch, recorder.url + suffix, **{"model": model, **extras})
    ours.edit(source, _recipe(tmp_path, [], False, {"format": "png"}),
              ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri()))
    (sent,) = recorder.take()
    with client(recorder.url) as sdk:
        sdk.images.edit(image=tmp_path / "image.png", prompt=PROMPT, model=model, n=1, quality="auto",
                        size="auto", output_format="png")
    (reference,) = recorder.take()
    assert _comparable(sent) == _comparable(reference)


# -- the Batch route: the JSONL file upload, the batch, and each line against the SDK's types ----------


def _batch_backend(monkeypatch, recorder, **extras):
    return _backend(monkeypatch, recorder.url + "/v1", backend="openai_batch", **extras)


def test_batch_upload_and_create_match_the_sdk(recorder, monkeypatch, tmp_path):
    source, refs = _files(tmp_path, "jpeg", ("png",), True)
    recipe = _recipe(tmp_path, refs, True, {"format": "jpeg", "quality": 85})
    ours = _batch_backend(monkeypatch, recorder, model="gpt-image-2", quality="low")
    context = ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri())
    jobs = asyncio.run(ours.asubmit_many([("p1", source, 0, context), ("p2", source, 0, context)], recipe))
    upload, create = recorder.take()
    jsonl = upload.files[0][3]
    (tmp_path / "image-edits.jsonl").write_bytes(jsonl)
    with openai.OpenAI(base_url=recorder.url + "/v1", api_key=KEY, max_retries=0) as client:
        uploaded = client.files.create(file=tmp_path / "image-edits.jsonl", purpose="batch")
        client.batches.create(input_file_id=create.json["input_file_id"], endpoint="/v1/images/edits",
                              completion_window="24h", metadata={"recipe": "wire"})
    sdk_upload, sdk_create = recorder.take()
    assert uploaded.purpose == "batch"
    assert _comparable(upload) == _comparable(sdk_upload)
    assert _comparable(create) == _comparable(sdk_create)
    assert set(jobs) == {"p1", "p2"} and {j["id"] for j in jobs.values()} == {"batch_rec"}


def test_batch_lines_follow_the_sdk_types(recorder, monkeypatch, tmp_path):
    from openai.types import batch_create_params, image_edit_params, image_input_reference_param

    source, refs = _files(tmp_path, "webp", ("jpeg",), True)
    recipe = _recipe(tmp_path, refs, True, {"format": "webp", "quality": 70})
    ours = _batch_backend(monkeypatch, recorder, model="gpt-image-1.5", quality="high", input_fidelity="high",
                          background="opaque", n=2, safety_identifier="user-hash-2")
    context = ImageContext("p1", tmp_path.as_uri(), tmp_path.as_uri())
    asyncio.run(ours.asubmit_many([("p1", source, 0, context)], recipe))
    upload, create = recorder.take()
    (line,) = [json.loads(text) for text in upload.files[0][3].decode().splitlines()]
    endpoints = typing.get_args(typing.get_type_hints(batch_create_params.BatchCreateParams)["endpoint"])
    endpoints = typing.get_args(endpoints[0]) if typing.get_origin(endpoints[0]) is typing.Literal else endpoints
    assert set(line) == {"custom_id", "method", "url", "body"} and line["method"] == "POST"
    assert line["url"] == create.json["endpoint"] == "/v1/images/edits" and line["url"] in endpoints
    body = line["body"]
    edit_fields = set(typing.get_type_hints(image_edit_params.ImageEditParamsBase))
    assert set(body) - {"images"} <= edit_fields and "image" not in body  # JSON form: images[] references
    reference_fields = set(typing.get_type_hints(image_input_reference_param.ImageInputReferenceParam))
    for ref in [*body["images"], body["mask"]]:
        assert set(ref) <= reference_fields and ref["image_url"].startswith("data:image/")
    assert [ref["image_url"].split(";")[0] for ref in body["images"]] == ["data:image/webp", "data:image/jpeg"]
    assert body == {**body, "prompt": PROMPT, "model": "gpt-image-1.5", "n": 2, "size": "auto", "quality": "high",
                    "output_format": "webp", "output_compression": 70, "background": "opaque",
                    "input_fidelity": "high", "safety_identifier": "user-hash-2"}
    assert isinstance(body["n"], int) and isinstance(body["output_compression"], int)
