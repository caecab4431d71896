"""Provenance in published files: XMP digital source type (pixels untouched) and a signed C2PA manifest.

The C2PA tests sign with a throwaway CA made here. c2pa-rs validates such a signature as
``Valid`` with a ``signingCredential.untrusted`` failure (the CA is on no trust list); passing
the CA as a trust anchor turns it ``Trusted``. A tampered file is ``Invalid``.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from airflow_image_catalog.pipeline.publishing.provenance import (
    DST_ALGORITHMIC_EDIT,
    DST_GENERATIVE_EDIT,
    ProvenanceError,
    ProvenanceFacts,
    ProvenanceStep,
    SignerConfig,
    apply_provenance,
    embed_xmp,
    read_c2pa,
    read_xmp,
    sign_c2pa,
    signer_from_env,
)
from tests.pki import throwaway_pki

SOURCE_SHA = hashlib.sha256(b"the original product photo").hexdigest()


def facts(**overrides) -> ProvenanceFacts:
    values = dict(
        source_sha256=SOURCE_SHA, recipe_name="marketplace_white_square", recipe_fingerprint="f" * 64,
        backend="openai", model="gpt-image-2", run_id="scheduled__2026-01-01T00:00:00+00:00",
        published_at="2026-01-01T01:02:03+00:00",
        steps=[ProvenanceStep.from_prompt("white_background", "Replace the background with pure white."),
               ProvenanceStep.from_prompt("square_canvas", "Centre the product <on> a square & canvas.")],
    )
    return ProvenanceFacts(**(values | overrides))


def encode(fmt: str, mode: str = "RGB", **params) -> bytes:
    if params.get("exif") == "camera":
        exif = Image.Exif()
        exif[0x010F] = "Camera maker"
        params["exif"] = exif.tobytes()
    image = Image.new(mode, (96, 64), (250, 250, 250) if mode == "RGB" else (250, 250, 250, 128))
    for x in range(20, 70):  # a "product": content that lossy codecs must keep exactly as encoded
        for y in range(10, 50):
            image.putpixel((x, y), (180, (x * 5) % 256, (y * 7) % 256) + ((255,) if mode == "RGBA" else ()))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


@pytest.fixture(scope="module")
def pki() -> dict[str, str]:
    return throwaway_pki()


@pytest.fixture(scope="module")
def signer(pki: dict[str, str]) -> SignerConfig:
    return SignerConfig(pki["chain"], pki["key"], alg="es256")


def actions_of(store: dict) -> list[dict]:
    active = store["manifests"][store["active_manifest"]]
    return [action for assertion in active["assertions"] if assertion["label"].startswith("c2pa.actions")
            for action in assertion["data"]["actions"]]


# --- XMP ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "mode", "params"), [
    ("JPEG", "RGB", {"quality": 90}),
    ("JPEG", "RGB", {"quality": 90, "exif": "camera"}),  # XMP goes after the Exif APP1
    ("PNG", "RGBA", {}),
    ("WEBP", "RGB", {"quality": 80}),  # simple lossy: gains a VP8X header
    ("WEBP", "RGBA", {"lossless": True}),  # simple lossless with alpha
    ("WEBP", "RGB", {"quality": 80, "icc_profile": b"\x00" * 128}),  # already extended (VP8X)
])
def test_xmp_round_trip_keeps_pixels_identical(fmt: str, mode: str, params: dict) -> None:
    original = encode(fmt, mode, **params)
    marked = embed_xmp(original, fmt.lower(), facts())

    assert pixels(marked) == pixels(original)  # inserted, never re-encoded
    xmp = read_xmp(marked)
    assert xmp["digital_source_type"] == DST_GENERATIVE_EDIT
    assert xmp["source_sha256"] == SOURCE_SHA
    assert xmp["recipe_name"] == "marketplace_white_square" and xmp["model"] == "gpt-image-2"
    assert xmp["generative"] is True and xmp["creator_tool"].startswith("airflow-image-catalog ")
    assert [s["id"] for s in xmp["steps"]] == ["white_background", "square_canvas"]
    assert "prompt" not in xmp["steps"][0]  # prompts are hashed unless asked for
    assert "Edited using generative AI" in xmp["description"]
    with Image.open(io.BytesIO(marked)) as image:  # Pillow finds the packet where the formats put it
        image.load()
        assert b"compositeWithTrainedAlgorithmicMedia" in _pillow_xmp(image)


def _pillow_xmp(image: Image.Image) -> bytes:
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    return raw.encode() if isinstance(raw, str) else raw


def test_xmp_is_replaced_not_duplicated_and_escapes_text() -> None:
    original = encode("PNG", "RGB")
    once = embed_xmp(original, "png", facts(model="old-model"))
    twice = embed_xmp(once, "png", facts(steps=[ProvenanceStep.from_prompt("s", "a < b & c", embed_prompt=True)]))

    assert twice.count(b"XML:com.adobe.xmp") == 1
    xmp = read_xmp(twice)
    assert xmp["model"] == "gpt-image-2" and xmp["steps"] == [
        {"id": "s", "prompt_sha256": hashlib.sha256(b"a < b & c").hexdigest(), "prompt": "a < b & c"}]
    jpeg = embed_xmp(embed_xmp(encode("JPEG", "RGB"), "jpg", facts()), "jpeg", facts())
    assert jpeg.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1


def test_local_engine_is_marked_algorithmically_enhanced() -> None:
    local = facts(backend="local", model="local-engine/0.1.0")
    xmp = read_xmp(embed_xmp(encode("JPEG", "RGB"), "jpeg", local))

    assert local.is_generative is False
    assert xmp["digital_source_type"] == DST_ALGORITHMIC_EDIT and xmp["generative"] is False
    assert facts(backend="local", generative=True).digital_source_type == DST_GENERATIVE_EDIT  # explicit wins


def test_unsupported_or_mismatched_formats_are_refused() -> None:
    with pytest.raises(ProvenanceError, match="unsupported"):
        embed_xmp(encode("GIF", "RGB"), "gif", facts())
    with pytest.raises(ProvenanceError, match="png, not jpeg"):
        embed_xmp(encode("PNG", "RGB"), "jpeg", facts())
    assert read_xmp(encode("PNG", "RGB")) is None


# --- C2PA -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_signed_manifest_names_the_edit_chain(fmt: str, signer: SignerConfig, pki: dict[str, str]) -> None:
    original = encode(fmt.upper(), "RGB")
    published, summary = apply_provenance(original, fmt, facts(), c2pa_signer=signer)

    assert pixels(published) == pixels(original)
    assert read_xmp(published)["digital_source_type"] == DST_GENERATIVE_EDIT  # signing kept the XMP
    store = read_c2pa(published, fmt)
    assert store["validation_state"] == "Valid"  # signature and hashes check out ...
    failures = {f["code"] for f in store["validation_results"]["activeManifest"]["failure"]}
    assert failures == {"signingCredential.untrusted"}  # ... but the throwaway CA is on no trust list
    assert read_c2pa(published, fmt, trust_anchors=pki["ca"])["validation_state"] == "Trusted"

    actions = actions_of(store)
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited", "c2pa.edited"]
    edited = actions[1]
    assert edited["digitalSourceType"] == DST_GENERATIVE_EDIT
    assert edited["softwareAgent"]["name"] == "gpt-image-2"
    assert edited["parameters"]["recipe"] == "marketplace_white_square"
    assert edited["parameters"]["model"] == "gpt-image-2"
    assert edited["parameters"]["step"] == "white_background"
    assert actions[0]["parameters"]["source_sha256"] == SOURCE_SHA
    active = store["manifests"][store["active_manifest"]]
    assert active["claim_generator_info"][0]["name"] == "airflow-image-catalog"
    assert active["ingredients"][0]["relationship"] == "parentOf"
    assert active["ingredients"][0]["instance_id"] == f"sha256:{SOURCE_SHA}"
    assert active["signature_info"]["common_name"] == "Catalog publisher"

    assert summary["sha256"] == hashlib.sha256(published).hexdigest() != summary["input_sha256"]
    assert summary["c2pa"]["actions"] == ["c2pa.opened", "c2pa.edited", "c2pa.edited"]
    assert summary["c2pa"]["digital_source_types"] == [DST_GENERATIVE_EDIT]
    assert summary["c2pa"]["timestamped"] is False


def test_source_bytes_become_a_hashed_parent_ingredient(signer: SignerConfig) -> None:
    source = encode("JPEG", "RGB", quality=60)
    no_thumbnail = SignerConfig(signer.cert_chain, signer.private_key, thumbnail=False)
    signed = sign_c2pa(encode("PNG", "RGB"), "png", facts(source_uri="s3://bucket/in/shoe.jpg"), no_thumbnail,
                       source=source)

    store = read_c2pa(signed)
    active = store["manifests"][store["active_manifest"]]
    ingredient = active["ingredients"][0]
    assert ingredient["title"] == "shoe.jpg" and ingredient["format"] == "image/jpeg"
    assert ingredient["relationship"] == "parentOf"
    assert store["validation_state"] == "Valid"
    assert "thumbnail" not in active  # the claim thumbnail was switched off


def test_tampered_file_fails_validation(signer: SignerConfig) -> None:
    published, _ = apply_provenance(encode("JPEG", "RGB"), "jpeg", facts(), c2pa_signer=signer)
    tampered = bytearray(published)
    tampered[-10] ^= 0xFF  # a bit of scan data, after the manifest

    store = read_c2pa(bytes(tampered), "jpeg")
    assert store["validation_state"] == "Invalid"
    assert "assertion.dataHash.mismatch" in {f["code"] for f in store["validation_results"]["activeManifest"]["failure"]}


def test_without_a_signer_only_xmp_is_embedded() -> None:
    original = encode("JPEG", "RGB")
    published, summary = apply_provenance(original, "jpeg", facts())

    assert read_c2pa(published, "jpeg") is None
    assert read_xmp(published)["digital_source_type"] == DST_GENERATIVE_EDIT
    assert summary["c2pa"] is None and summary["xmp"] is True
    assert summary["input_sha256"] == hashlib.sha256(original).hexdigest()
    assert summary["sha256"] == hashlib.sha256(published).hexdigest()


def test_signer_from_env(tmp_path, pki: dict[str, str]) -> None:
    assert signer_from_env({}) is None
    with pytest.raises(ProvenanceError, match="both"):
        signer_from_env({"CATALOG_C2PA_CERT": "/x.pem"})
    (tmp_path / "chain.pem").write_text(pki["chain"])
    (tmp_path / "key.pem").write_text(pki["key"])
    config = signer_from_env({"CATALOG_C2PA_CERT": str(tmp_path / "chain.pem"),
                              "CATALOG_C2PA_KEY": str(tmp_path / "key.pem"), "CATALOG_C2PA_ALG": "ES256"})
    assert config.alg == "es256" and config.tsa_url is None
    assert config.pem_chain() == pki["chain"].encode() and config.pem_key() == pki["key"].encode()
    with pytest.raises(ProvenanceError, match="readable file"):
        SignerConfig("/nonexistent.pem", pki["key"]).pem_chain()


def test_signing_with_a_mismatched_key_fails_loudly(signer: SignerConfig) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ProvenanceError, match="C2PA signing failed"):
        sign_c2pa(encode("JPEG", "RGB"), "jpeg", facts(), SignerConfig(signer.cert_chain, other))
