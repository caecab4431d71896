"""Upload preparation: downscale to what the model uses, convert rejected formats, strip metadata."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from airflow_image_catalog.backends import prepare
from airflow_image_catalog.backends.base import EditError
from airflow_image_catalog.backends.prepare import (
    UploadLimits,
    limits_for,
    prepare_upload,
    scale_mask,
    upload_size,
)
from airflow_image_catalog.imaging.engine import ImageDecodeError, decode_image

GPT_IMAGE_1 = limits_for("openai", "gpt-image-1")


# -- generated inputs -----------------------------------------------------------------------------------
def gradient(width: int, height: int) -> np.ndarray:
    """A smooth RGB image (compresses fast, and any misplaced pixel shows)."""
    arr = np.empty((height, width, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)
    arr[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    arr[..., 2] = 128
    return arr


def encode(img: Image.Image | np.ndarray, fmt: str, **kwargs) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def exif(orientation: int | None = None) -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F] = "Camera Maker"  # Make
    if orientation:
        tags[0x0112] = orientation
    return tags


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def swapped_icc() -> bytes:
    """A non-sRGB RGB profile: sRGB with the red and blue primaries exchanged."""
    icc = bytearray(srgb_icc())
    tags = {}
    for i in range(int.from_bytes(icc[128:132], "big")):
        entry = 132 + 12 * i
        tags[bytes(icc[entry:entry + 4])] = int.from_bytes(icc[entry + 4:entry + 8], "big")
    red, blue = tags[b"rXYZ"], tags[b"bXYZ"]
    icc[red:red + 20], icc[blue:blue + 20] = icc[blue:blue + 20], icc[red:red + 20]
    return bytes(icc)


def with_iptc(jpeg: bytes) -> bytes:
    """Insert an APP13 Photoshop/IPTC segment (Pillow cannot write one)."""
    iptc = b"\x1c\x02\x78\x00\x05hello"  # record 2, dataset 120 (caption)
    resource = b"8BIM" + (0x0404).to_bytes(2, "big") + b"\x00\x00" + len(iptc).to_bytes(4, "big") + iptc + b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    return jpeg[:2] + b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_rgb16(arr16: np.ndarray) -> bytes:
    """A 48-bit RGB PNG (Pillow writes only 16-bit greyscale)."""
    height, width, _ = arr16.shape
    rows = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file whose header claims a huge image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_consistent(out: bytes, record: dict) -> Image.Image:
    """The record describes the uploaded bytes exactly."""
    img = opened(out)
    upload = record["upload"]
    assert (img.width, img.height) == (upload["width"], upload["height"])
    assert prepare._format_name(img.format) == upload["format"]
    assert upload["bytes"] == len(out)
    return img


def assert_no_metadata(img: Image.Image) -> None:
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "photoshop", "comment", "mp"} & set(img.info)
    assert not any(isinstance(value, str) for value in img.info.values())  # PNG text chunks
    assert len(img.getexif()) == 0


@pytest.fixture(scope="module")
def camera_jpeg() -> bytes:
    return encode(gradient(6000, 4000), "JPEG", quality=85, exif=exif())


# -- the limits table -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("backend", "model", "expected"), [
    ("openai", "gpt-image-1", prepare.OPENAI_GPT_IMAGE_1),
    ("openai", "gpt-image-1.5", prepare.OPENAI_GPT_IMAGE_1),
    ("openai_batch", "gpt-image-1-mini", prepare.OPENAI_GPT_IMAGE_1),
    ("OpenAI", "GPT-Image-2", prepare.OPENAI_GPT_IMAGE_2),
    ("openai", "", prepare.OPENAI_GPT_IMAGE_1),
    ("bfl", "flux-kontext-pro", prepare.BFL_KONTEXT),
    ("bfl", "flux-2-pro", prepare.BFL_FLUX_2),
    ("firefly", "firefly-fill-v3", prepare.FIREFLY),
    ("recraft", "recraftv3", prepare.RECRAFT),
    ("recraft", "recraftv4_pro", prepare.RECRAFT_V4_PRO),
    ("local", "local-engine/1.0", prepare.LOCAL),
    ("some-gateway", "x", prepare.DEFAULT),
])
def test_limits_for(backend, model, expected):
    assert limits_for(backend, model) == expected


def test_limits_table_numbers():
    assert GPT_IMAGE_1.max_side == 2048 and GPT_IMAGE_1.max_bytes < 50_000_000
    assert limits_for("openai", "gpt-image-2").max_side == 3840
    assert limits_for("recraft", "recraftv3").max_bytes < 5_000_000
    local = limits_for("local", "")
    assert (local.max_side, local.max_pixels, local.formats, local.max_bytes, local.normalize) == (
        None, None, None, None, False)


def test_upload_limits_validation():
    assert UploadLimits(formats=("JPG", "png"), preferred_format="jpg").formats == ("jpeg", "png")
    with pytest.raises(ValueError, match="formats"):
        UploadLimits(formats=("tiff",))
    with pytest.raises(ValueError, match="preferred_format"):
        UploadLimits(formats=("png",), preferred_format="jpeg")
    with pytest.raises(ValueError, match="max_side"):
        UploadLimits(max_side=0)


def test_upload_size_examples():
    assert upload_size(6000, 4000, GPT_IMAGE_1) == (2048, 1365)
    assert upload_size(4000, 6000, GPT_IMAGE_1) == (1365, 2048)
    assert upload_size(1000, 800, GPT_IMAGE_1) == (1000, 800)  # never upscaled
    assert upload_size(6000, 4000, limits_for("openai", "gpt-image-2")) == (3527, 2351)  # 8.29 MP budget
    assert upload_size(6000, 4000, limits_for("local", "")) == (6000, 4000)
    assert upload_size(30000, 10, GPT_IMAGE_1) == (2048, 1)


# -- pass-through -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_clean_small_image_passes_through_byte_identical(fmt):
    data = encode(gradient(300, 200), fmt)
    out, record = prepare_upload(data, GPT_IMAGE_1)
    assert out == data
    assert record["actions"] == []
    assert record["source"] == record["upload"] == {
        "format": fmt.lower(), "width": 300, "height": 200, "bytes": len(data)}


def test_pass_through_reads_only_the_header(monkeypatch):
    monkeypatch.setattr(prepare, "decode_image", lambda *a, **k: pytest.fail("decoded a pass-through"))
    data = encode(gradient(64, 64), "PNG")
    assert prepare_upload(data, GPT_IMAGE_1)[0] == data


def test_srgb_tag_alone_is_dropped_without_touching_pixels():
    data = encode(gradient(300, 200), "JPEG", quality=90, icc_profile=srgb_icc())
    out, record = prepare_upload(data, GPT_IMAGE_1)
    assert record["actions"] == ["stripped metadata (icc)"]
    assert "icc_profile" not in opened(out).info
    assert np.array_equal(decode_image(out), decode_image(data))


# -- downscaling --------------------------------------------------------------------------------------------
def test_camera_jpeg_downscaled_to_what_gpt_image_1_uses(camera_jpeg, monkeypatch):
    # a JPEG is decoded at a reduced DCT scale, not in full by decode_image
    monkeypatch.setattr(prepare, "decode_image", lambda *a, **k: pytest.fail("full decode of a JPEG"))
    start = time.perf_counter()
    out, record = prepare_upload(camera_jpeg, GPT_IMAGE_1)
    assert time.perf_counter() - start < 3
    img = assert_consistent(out, record)
    assert img.size == (2048, 1365)  # aspect 3:2 kept
    assert record["actions"] == ["downscaled 6000x4000 -> 2048x1365", "stripped metadata (exif)"]
    assert record["source"] == {"format": "jpeg", "width": 6000, "height": 4000, "bytes": len(camera_jpeg)}
    assert record["upload"]["format"] == "jpeg" and record["upload"]["quality"] == 95
    assert_no_metadata(img)
    # the content survives: same gradient, sampled at corresponding places
    small = np.asarray(img.convert("RGB"), dtype=np.int16)
    expected = gradient(2048, 1365).astype(np.int16)
    assert np.abs(small[5:-5, 5:-5] - expected[5:-5, 5:-5]).mean() < 3
    # a per-image mask follows the upload's size (OpenAI requires the mask to match the image)
    mask = encode(Image.new("1", (6000, 4000), 1), "PNG")
    assert opened(scale_mask(mask, (record["upload"]["width"], record["upload"]["height"]))).size == (2048, 1365)


def test_local_backend_never_touches_the_image(camera_jpeg):
    out, record = prepare_upload(camera_jpeg, limits_for("local", "local-engine"))
    assert out is camera_jpeg and record["actions"] == []
    tiff = encode(gradient(100, 80), "TIFF")
    rotated = encode(gradient(100, 80), "JPEG", exif=exif(6))
    for data in (tiff, rotated):
        assert prepare_upload(data, limits_for("local", ""))[0] is data


def test_grey_image_stays_one_channel():
    grey = Image.fromarray(gradient(3000, 1000)[..., 0], "L")
    out, record = prepare_upload(encode(grey, "PNG"), GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert img.mode == "L" and img.size == (2048, 683)


# -- format conversion ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "mode", "expected"), [
    ("TIFF", "RGB", "jpeg"),  # an opaque photo: the preferred lossy format
    ("BMP", "RGB", "jpeg"),
    ("GIF", "P", "png"),  # graphics: lossless
    ("TIFF", "RGBA", "png"),  # transparency: lossless with alpha
])
def test_rejected_formats_are_converted(fmt, mode, expected):
    img = Image.fromarray(gradient(120, 90)).convert(mode)
    if mode == "RGBA":
        img.putalpha(128)  # a fully opaque alpha channel is dropped, and the photo goes to JPEG
    out, record = prepare_upload(encode(img, fmt), GPT_IMAGE_1)
    uploaded = assert_consistent(out, record)
    assert record["upload"]["format"] == expected
    assert f"converted {fmt.lower()} -> {expected}" in record["actions"]
    assert uploaded.size == (120, 90)


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert "kept the first of 3 frames" in record["actions"]
    assert img.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_mpo_extras_are_dropped_losslessly():
    data = encode(Image.fromarray(gradient(200, 100)), "MPO", save_all=True,
                  append_images=[Image.new("RGB", (200, 100), (0, 0, 255))])
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert record["actions"] == ["stripped metadata (mpf)"] and len(out) < len(data)
    assert getattr(img, "n_frames", 1) == 1
    assert np.array_equal(decode_image(out), decode_image(data))


# -- orientation, colour, odd modes ------------------------------------------------------------------------------
@pytest.mark.parametrize(("stored", "uploaded"), [((300, 200), (200, 300)), ((4200, 2800), (1365, 2048))])
def test_exif_orientation_is_applied_then_stripped(stored, uploaded):
    width, height = stored
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[: height // 4, : width // 6] = (255, 0, 0)  # a red block in the stored top-left corner
    data = encode(pixels, "JPEG", quality=95, exif=exif(6))  # 6: display rotated 90 degrees clockwise
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert img.size == uploaded
    assert record["source"]["orientation"] == 6
    assert record["actions"][0] == "rotated upright (EXIF orientation 6)"
    assert record["actions"][-1] == "stripped metadata (exif)"
    upright = np.asarray(img.convert("RGB"))
    w, h = uploaded
    assert upright[h // 20, w - w // 20].tolist() == pytest.approx([255, 0, 0], abs=12)  # now top-right
    assert upright[h // 20, w // 20].max() < 20
    assert_no_metadata(img)


def test_non_srgb_profile_is_converted_then_stripped():
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), "PNG", icc_profile=swapped_icc())
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert any(action.startswith("converted colour to sRGB") for action in record["actions"])
    assert "stripped metadata (icc)" in record["actions"]
    red, _, blue = img.convert("RGB").getpixel((10, 10))
    assert blue > 150 and red < 80  # the profile said the first channel is the blue primary
    assert_no_metadata(img)


def test_cmyk_jpeg_is_converted_to_rgb():
    data = encode(Image.new("CMYK", (80, 60), (0, 255, 255, 0)), "JPEG", quality=95)
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert img.mode == "RGB" and "converted CMYK to sRGB" in record["actions"]
    assert img.getpixel((40, 30)) == pytest.approx((255, 0, 0), abs=12)


def test_sixteen_bit_pngs_become_eight_bit():
    grey16 = Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16))
    assert grey16.mode == "I;16"
    out, record = prepare_upload(encode(grey16, "PNG"), GPT_IMAGE_1)
    assert assert_consistent(out, record).mode == "L"
    assert "converted 16-bit to 8-bit" in record["actions"]

    rgb16 = gradient(64, 48).astype(np.uint16) * 257
    out, record = prepare_upload(png_rgb16(rgb16), GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert img.mode == "RGB" and out[24] == 8 and "converted 16-bit to 8-bit" in record["actions"]
    assert np.abs(np.asarray(img, dtype=np.int16) - gradient(64, 48)).max() <= 1


# -- transparency ---------------------------------------------------------------------------------------------
def cutout(width: int, height: int) -> np.ndarray:
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 50, 10)
    rgba[..., 3] = np.linspace(0, 255, width, dtype=np.uint8)  # fully transparent .. opaque, left to right
    return rgba


def test_alpha_png_keeps_alpha_and_colour_when_downscaled():
    data = encode(Image.fromarray(cutout(3000, 600), "RGBA"), "PNG")
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert img.mode == "RGBA" and img.size == (2048, 410) and record["upload"]["format"] == "png"
    rgba = np.asarray(img, dtype=np.int16)
    expected_alpha = np.linspace(0, 255, 2048)
    assert np.abs(rgba[200, :, 3] - expected_alpha).max() <= 2
    visible = rgba[200, :, 3] >= 32  # colour under partial transparency is recovered, not whitened
    assert np.abs(rgba[200, visible, :3] - [200, 50, 10]).max() <= 4


def test_transparent_palette_gif_keeps_transparency():
    img = Image.new("P", (40, 30), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 20, 30))
    out, record = prepare_upload(encode(img, "GIF", transparency=0), GPT_IMAGE_1)
    uploaded = assert_consistent(out, record).convert("RGBA")
    assert uploaded.getpixel((5, 5))[3] == 0 and uploaded.getpixel((30, 5)) == (255, 0, 0, 255)


def test_alpha_is_flattened_only_when_no_accepted_format_keeps_it():
    data = encode(Image.fromarray(cutout(60, 40), "RGBA"), "TIFF")
    out, record = prepare_upload(data, UploadLimits(formats=("jpeg",)))
    img = assert_consistent(out, record)
    assert img.mode == "RGB"
    assert "flattened transparency onto white (no accepted format keeps alpha)" in record["actions"]
    assert img.getpixel((0, 20)) == pytest.approx((255, 255, 255), abs=3)  # transparent -> white


# -- metadata ---------------------------------------------------------------------------------------------------
def test_jpeg_metadata_stripped_without_re_encoding():
    data = with_iptc(encode(gradient(300, 200), "JPEG", quality=90, exif=exif(1), comment=b"shot by x",
                            xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"))
    assert "photoshop" in Image.open(io.BytesIO(data)).info
    out, record = prepare_upload(data, GPT_IMAGE_1)
    img = assert_consistent(out, record)
    assert record["actions"] == ["stripped metadata (exif, xmp, iptc, comment)"]
    assert_no_metadata(img)
    assert np.array_equal(decode_image(out), decode_image(data))  # the same compressed pixels


def test_png_and_webp_metadata_stripped_without_re_encoding():
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "editor 1.0")
    png = encode(gradient(90, 60), "PNG", pnginfo=text, exif=exif())
    webp = encode(gradient(90, 60), "WEBP", quality=80, exif=exif(), xmp=b"<x/>", icc_profile=srgb_icc())
    for data, kinds in ((png, "exif, comment"), (webp, "exif, xmp, icc")):
        out, record = prepare_upload(data, GPT_IMAGE_1)
        img = assert_consistent(out, record)
        assert record["actions"] == [f"stripped metadata ({kinds})"]
        assert_no_metadata(img)
        assert np.array_equal(decode_image(out), decode_image(data))


# -- bytes --------------------------------------------------------------------------------------------------------
def test_over_max_bytes_steps_quality_down():
    data = encode(noise(512, 512), "PNG")  # ~790 kB of incompressible pixels
    limits = UploadLimits(max_bytes=300_000)
    out, record = prepare_upload(data, limits)
    assert_consistent(out, record)
    assert len(out) <= 300_000
    assert record["upload"]["format"] in ("jpeg", "webp") and record["upload"]["quality"] < 95
    assert any(action.startswith("re-encoded as") for action in record["actions"])


def test_impossible_size_is_a_clear_final_error():
    with pytest.raises(EditError) as err:
        prepare_upload(encode(noise(192, 192), "PNG"), UploadLimits(max_bytes=2_000))
    assert err.value.code == "image_too_large" and err.value.retryable is False
    assert "2000 bytes" in str(err.value)
    # transparency is never silently dropped to fit: no accepted lossy format keeps alpha
    rgba = np.dstack([noise(128, 128), np.full((128, 128), 128, np.uint8)])
    with pytest.raises(EditError, match="no accepted lossy format keeps transparency") as err:
        prepare_upload(encode(Image.fromarray(rgba, "RGBA"), "PNG"),
                       UploadLimits(formats=("png", "jpeg"), max_bytes=20_000))
    assert err.value.code == "image_too_large"


# -- broken input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (b"definitely not an image" * 10, "not an image"),
])
def test_unreadable_input_raises_the_engine_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        prepare_upload(data, GPT_IMAGE_1)


def test_truncated_image_raises_the_engine_error(camera_jpeg):
    with pytest.raises(ImageDecodeError, match="truncated"):
        prepare_upload(camera_jpeg[: len(camera_jpeg) // 2], GPT_IMAGE_1)  # must be decoded to downscale
    small = encode(noise(200, 200), "JPEG")[:3000]
    assert prepare_upload(small, GPT_IMAGE_1)[0] == small  # header-only pass-through: preflight's job...
    with pytest.raises(ImageDecodeError, match="truncated"):
        prepare_upload(small, GPT_IMAGE_1, verify=True)  # ...unless asked to verify


@pytest.mark.parametrize("size", [(9000, 9000), (40000, 40000)])  # over the engine's 60 MP; over Pillow's bomb limit
def test_decompression_bomb_refused_from_the_header(monkeypatch, size):
    monkeypatch.setattr(prepare, "decode_image", lambda *a, **k: pytest.fail("decoded a bomb"))
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        prepare_upload(bomb_png(*size), GPT_IMAGE_1)
    assert time.perf_counter() - start < 0.5


# -- masks ----------------------------------------------------------------------------------------------------------
def test_scale_mask_matches_the_uploaded_size_and_keeps_mode():
    alpha = np.full((400, 600), 255, np.uint8)
    alpha[100:300, 150:450] = 0  # OpenAI: alpha 0 = edit here
    rgba = np.dstack([np.zeros((400, 600, 3), np.uint8), alpha])
    out = scale_mask(encode(Image.fromarray(rgba, "RGBA"), "PNG"), (300, 200))
    mask = opened(out)
    assert (mask.format, mask.mode, mask.size) == ("PNG", "RGBA", (300, 200))
    assert set(np.unique(np.asarray(mask)[..., 3]).tolist()) == {0, 255}  # no new grey levels
    assert mask.getpixel((150, 100))[3] == 0 and mask.getpixel((10, 10))[3] == 255

    palette = Image.new("P", (60, 40), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    scaled = opened(scale_mask(encode(palette, "PNG", transparency=0), (30, 20)))
    assert (scaled.mode, scaled.size, scaled.info.get("transparency")) == ("P", (30, 20), 0)

    grey = encode(Image.new("L", (30, 20), 255), "PNG")
    assert scale_mask(grey, (30, 20)) is grey  # already the right size
    assert opened(scale_mask(encode(Image.new("L", (30, 20)), "BMP"), (30, 20))).format == "PNG"
    with pytest.raises(ValueError, match="positive integers"):
        scale_mask(grey, (0, 20))


# -- properties ---------------------------------------------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

limits_strategy = st.builds(
    UploadLimits,
    max_side=st.none() | st.integers(1, 4096),
    max_pixels=st.none() | st.integers(1, 20_000_000),
)


def assert_fits(width: int, height: int, new: tuple[int, int], limits: UploadLimits) -> None:
    new_w, new_h = new
    assert 1 <= new_w <= width and 1 <= new_h <= height  # never upscaled
    if limits.max_side:
        assert max(new) <= limits.max_side
    if limits.max_pixels:
        assert new_w * new_h <= limits.max_pixels
    # aspect ratio within one pixel of the short side implied by the long one
    if width >= height:
        assert abs(new_h - height * new_w / width) <= 1
    else:
        assert abs(new_w - width * new_h / height) <= 1


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40_000), st.integers(1, 40_000), limits_strategy)
def test_upload_size_property(width, height, limits):
    assert_fits(width, height, upload_size(width, height, limits), limits)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 160), st.integers(1, 160), st.integers(4, 120), st.none() | st.integers(16, 8000),
       st.sampled_from(["PNG", "JPEG", "BMP", "WEBP"]), st.booleans())
def test_prepare_upload_property(width, height, max_side, max_pixels, fmt, alpha):
    limits = UploadLimits(max_side=max_side, max_pixels=max_pixels, formats=("png", "jpeg"))
    img = Image.fromarray(noise(width, height, seed=width * height))
    if alpha and fmt in ("PNG", "WEBP"):
        img.putalpha(128)
    out, record = prepare_upload(encode(img, fmt), limits)
    uploaded = assert_consistent(out, record)
    assert record["upload"]["format"] in limits.formats
    assert_fits(width, height, uploaded.size, limits)
    assert ("A" in uploaded.getbands()) == (alpha and fmt in ("PNG", "WEBP"))
