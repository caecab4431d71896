from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from airflow_image_catalog.imaging.engine import (
    ImageDecodeError,
    OpParamError,
    decode_image,
    encode_image,
    image_format,
)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient_rgb(w: int = 64, h: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 128)], -1).astype(np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n"
    for name, body in ((b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\x00" * 64)), (b"IEND", b"")):
        out += struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))
    return out


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, I am a text file pretending to be a .png\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|corrupt"),
    ],
)
def test_decode_rejects_non_images(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_decode_rejects_truncated_jpeg_and_png():
    jpeg = _save(Image.fromarray(_gradient_rgb(400, 300)), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(jpeg[: len(jpeg) // 2])
    png = _save(Image.fromarray(_gradient_rgb(400, 300)), "PNG")
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(png[: len(png) - 200])


def test_decode_rejects_broken_sample_upload(sample_dirs):
    dest, _ = sample_dirs
    with pytest.raises(ImageDecodeError):
        decode_image((dest / "broken_upload.jpg").read_bytes())


def test_decode_rejects_huge_header_before_decoding():
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image(_png_header_only(100_000, 100_000))
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image(_png_header_only(5000, 5000), max_pixels=1_000_000)


def test_decode_cmyk_converts_to_rgb():
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # pure red ink
    out = decode_image(_save(cmyk, "JPEG", quality=95))
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    r, g, b = out[5, 10].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_decode_16bit_grey_png():
    arr = (np.linspace(0, 65535, 64 * 8).reshape(8, 64)).astype(np.uint16)
    out = decode_image(_save(Image.fromarray(arr), "PNG"))
    assert out.shape == (8, 64, 3)
    assert out[0, 0].tolist() == [0, 0, 0] and out[-1, -1].tolist() == [255, 255, 255]
    assert (out[..., 0] == out[..., 1]).all()


def test_decode_float_and_int32_modes():
    f = Image.fromarray(np.full((4, 4), 0.5, np.float32), "F")
    assert decode_image(_save(f, "TIFF"))[0, 0].tolist() == [128, 128, 128]
    i = Image.fromarray(np.full((4, 4), 65535, np.int32), "I")
    assert decode_image(_save(i, "TIFF"))[0, 0].tolist() == [255, 255, 255]


def test_decode_palette_with_transparency_composites_on_white():
    p = Image.new("P", (10, 10), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (0, 0, 5, 10))
    out = decode_image(_save(p, "PNG", transparency=1))
    assert out[5, 2].tolist() == [255, 255, 255]  # transparent index -> white
    assert out[5, 7].tolist() == [255, 0, 0]


def test_decode_la_and_rgba_alpha():
    la = Image.merge("LA", [Image.new("L", (4, 4), 0), Image.new("L", (4, 4), 0)])
    assert decode_image(_save(la, "PNG"))[0, 0].tolist() == [255, 255, 255]
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert decode_image(_save(rgba, "PNG"))[0, 0].tolist() == [127, 127, 127]
    one = Image.new("1", (4, 4), 1)
    assert decode_image(_save(one, "PNG"))[0, 0].tolist() == [255, 255, 255]


def test_decode_applies_exif_orientation():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    data = _save(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data)
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[-5, 10, 0] < 60  # left edge became the top


def test_decode_converts_icc_profile_to_srgb():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    arr = np.full((4, 4, 3), (200, 100, 50), np.uint8)
    plain = decode_image(_save(Image.fromarray(arr), "PNG", icc_profile=srgb.tobytes()))
    assert np.abs(plain.astype(int) - arr.astype(int)).max() <= 2  # sRGB -> sRGB is (almost) identity


def test_encode_round_trip_icc_and_no_exif():
    arr = _gradient_rgb()
    for fmt in ("png", "tiff"):
        data = encode_image(arr, format=fmt)
        assert image_format(data) == fmt
        assert np.array_equal(decode_image(data), arr)
    for fmt in ("jpeg", "webp"):
        data = encode_image(arr, format=fmt, quality=95)
        assert image_format(data) == fmt
        assert np.abs(decode_image(data).astype(int) - arr.astype(int)).mean() < 3
    for fmt in ("jpeg", "png", "webp", "tiff"):
        with Image.open(io.BytesIO(encode_image(arr, format=fmt))) as img:
            icc = img.info.get("icc_profile")
            assert icc, fmt
            desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
            assert "sRGB" in desc
            if fmt != "tiff":  # TIFF's own IFD0 tags (size, compression) are what getexif() reads
                assert not img.getexif(), fmt
            assert "exif" not in img.info and "comment" not in img.info


def test_encode_jpeg_subsampling_follows_quality():
    from PIL import JpegImagePlugin

    arr = _gradient_rgb()
    with Image.open(io.BytesIO(encode_image(arr, quality=95))) as img:
        assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
    with Image.open(io.BytesIO(encode_image(arr, quality=70))) as img:
        assert JpegImagePlugin.get_sampling(img) == 2  # 4:2:0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "gif"}, "format"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
        ({"quality": True}, "quality"),
    ],
)
def test_encode_validates(kwargs, field):
    with pytest.raises(OpParamError) as exc:
        encode_image(_gradient_rgb(), **kwargs)
    assert exc.value.field == field and field in str(exc.value)


def test_image_format_sniffing():
    assert image_format(b"") is None
    assert image_format(b"not an image") is None
    assert image_format(_png_header_only(10, 10)) == "png"
    assert image_format(_save(Image.new("RGB", (2, 2)), "JPEG")) == "jpeg"
