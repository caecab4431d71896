"""The bad-input corpus: every kind of hostile or unusual upload, generated, with the outcome it must get.

Each :class:`Case` is one source file (name + bytes) and what the pipeline must make of it:
``edited`` (decoded correctly, converted where needed) or ``failed_final`` with a reason
matching ``reason`` (a regular expression), never a crashed chunk. Discovery ignores files
whose extension is not an image's (``ignored``). Bombs are refused from their header,
before any pixel is decoded, so peak memory stays bounded.

Cases that are not source files (hostile object keys, a mask of the wrong size, bad
recipes) are in :data:`HOSTILE_KEYS`, :func:`wrong_size_mask_case` and :data:`BAD_RECIPES`.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

EDITED, FAILED_FINAL, IGNORED = "edited", "failed_final", "ignored"


@dataclass(frozen=True)
class Case:
    """One upload: ``filename`` under the source root, its ``data``, the outcome it must get.

    :param kind: what is special about it (the table's row name).
    :param expect: ``edited``, ``failed_final`` or ``ignored``.
    :param reason: regex the per-image error must match (``failed_final`` only).
    """

    kind: str
    filename: str
    data: bytes
    expect: str
    reason: str = ""

    @property
    def stem(self) -> str:
        return self.filename.rsplit(".", 1)[0]


# -- building blocks ---------------------------------------------------------------------------


def _product(mode: str = "RGB", size: tuple[int, int] = (64, 48)):
    """A small product shot (box on white) in ``mode``: distinct per call site through ``size``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    w, h = size
    ImageDraw.Draw(image).rectangle((w // 4, h // 5, w * 3 // 4, h * 4 // 5), fill=(190, 60, 40))
    return image if mode == "RGB" else image.convert(mode)


def _save(image, format: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int, *, rows: int = 1, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG header claiming ``width`` x ``height``, with compressed zero rows for the first ``rows``.

    ``rows == height`` is a real, valid image (a decompression bomb when large: a few hundred KB
    that decode to ``width * height`` bytes); fewer rows is a truncated one. Built row by row,
    so making it never holds the decoded image.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    compressor, parts = zlib.compressobj(9), []
    row = b"\x00" * (1 + width * bit_depth // 8)
    for _ in range(rows):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts)) + (
        _png_chunk(b"IEND", b"") if rows == height else b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to claim ``width`` x ``height``."""
    data = bytearray(_save(_product(size=(32, 24)), "JPEG", quality=80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _icc_with_primaries(red: tuple, green: tuple, blue: tuple) -> bytes:
    """sRGB's ICC profile (LittleCMS-built) with its colorant tags replaced: a wide-gamut RGB profile."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", icc[128:132])[0]
    wanted = {b"rXYZ": red, b"gXYZ": green, b"bXYZ": blue}
    for i in range(count):
        sig, offset, _ = struct.unpack(">4sII", icc[132 + 12 * i: 144 + 12 * i])
        if sig in wanted:
            icc[offset + 8: offset + 20] = b"".join(struct.pack(">i", round(v * 65536)) for v in wanted[sig])
    icc[84:100] = b"\x00" * 16  # profile id (MD5) no longer matches: zero means "not computed"
    return bytes(icc)


#: Adobe RGB (1998) colorants, D50-adapted (as ICC v2/v4 profiles store them)
ADOBE_RGB_ICC_PRIMARIES = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457))


def adobe_rgb_icc() -> bytes:
    return _icc_with_primaries(*ADOBE_RGB_ICC_PRIMARIES)


def _exif_rotated() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return _save(_product(size=(80, 40)), "JPEG", quality=90, exif=exif)


def _corrupt_exif() -> bytes:
    data = bytearray(_exif_rotated())
    app1 = data.index(b"Exif\x00\x00")
    data[app1 + 6: app1 + 30] = b"\xde\xad\xbe\xef" * 6  # the TIFF header and first IFD: garbage
    return bytes(data)


def _animated(format: str) -> bytes:
    frames = [_product(size=(48, 48)), _product(size=(48, 48)).transpose(0)]
    return _save(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _multipage_tiff() -> bytes:
    pages = [_product(size=(40, 30)), _product("L", size=(40, 30))]
    return _save(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _png16() -> bytes:
    import numpy as np
    from PIL import Image

    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")  # mode I;16


def _float_tiff() -> bytes:
    import numpy as np
    from PIL import Image

    return _save(Image.fromarray(np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(30, 40)), "TIFF")


def _palette_transparent() -> bytes:
    image = _product("P", size=(50, 40))
    return _save(image, "PNG", transparency=0)


def _alpha() -> bytes:
    image = _product("RGBA", size=(60, 40))
    image.putalpha(image.getchannel("R").point(lambda v: 255 if v < 250 else 0))
    return _save(image, "PNG")


def _heic_header() -> bytes:
    """The start of an ISO-BMFF HEIC file (``ftyp`` box, brand ``heic``), as phones write them."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00\x00\x00\x08free" + b"\x00" * 200


def _truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _png_bad_crc() -> bytes:
    data = bytearray(_save(_product(size=(40, 40)), "PNG"))
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4: idat])[0]
    data[idat + 4 + length] ^= 0xFF  # the IDAT chunk's CRC
    return bytes(data)


CORPUS_BUILDERS: tuple[tuple[str, str, Callable[[], bytes], str, str], ...] = (
    # kind, filename, builder, expected outcome, reason regex
    ("zero-byte file", "zero_byte.jpg", lambda: b"", FAILED_FINAL, r"empty file: 0 bytes"),
    ("truncated JPEG", "truncated_jpeg.jpg", lambda: _truncated(_save(_product(size=(120, 90)), "JPEG", quality=95)),
     FAILED_FINAL, r"truncated or corrupt image data \(JPEG\)"),
    ("truncated PNG", "truncated_png.png", lambda: _truncated(_save(_product(size=(120, 90)), "PNG")), FAILED_FINAL,
     r"truncated or corrupt image data \(PNG\)"),
    ("PNG CRC error", "bad_crc.png", _png_bad_crc, FAILED_FINAL, r"truncated or corrupt image data \(PNG\)"),
    ("wrong extension (PNG bytes as .jpg)", "png_named.jpg", lambda: _save(_product(size=(50, 30)), "PNG"),
     EDITED, ""),
    ("HTML saved as .jpg", "error_page.jpg", lambda: b"<!doctype html><html><body>404 Not Found</body></html>",
     FAILED_FINAL, r"not an image: unidentified format"),
    ("decompression bomb (10000x10000, 100 KB)", "bomb.png", lambda: png_declaring(10_000, 10_000, rows=10_000),
     FAILED_FINAL, r"too many pixels: 10000x10000"),
    ("20000x20000 declared (PNG)", "declared_huge_png.png", lambda: png_declaring(20_000, 20_000, rows=2),
     FAILED_FINAL, r"too many pixels: 400000000 declared"),
    ("20000x20000 declared (JPEG)", "declared_huge_jpeg.jpg", lambda: jpeg_declaring(20_000, 20_000), FAILED_FINAL,
     r"too many pixels: 400000000 declared"),
    ("1x1 image", "one_pixel.png", lambda: _save(_product(size=(1, 1)), "PNG"), EDITED, ""),
    ("1x4000 sliver", "sliver.png", lambda: _save(_product(size=(1, 4000)), "PNG"), EDITED, ""),
    ("16-bit PNG", "sixteen_bit.png", _png16, EDITED, ""),
    ("32-bit float TIFF", "float.tif", _float_tiff, EDITED, ""),
    ("CMYK JPEG", "cmyk.jpg", lambda: _save(_product("CMYK", size=(56, 40)), "JPEG", quality=90), EDITED, ""),
    ("palette PNG with transparency", "palette.png", _palette_transparent, EDITED, ""),
    ("LA (grey + alpha) PNG", "grey_alpha.png", lambda: _save(_product("LA", size=(52, 40)), "PNG"), EDITED, ""),
    ("RGBA PNG with alpha", "alpha.png", _alpha, EDITED, ""),
    ("grayscale JPEG", "grey.jpg", lambda: _save(_product("L", size=(58, 40)), "JPEG", quality=90), EDITED, ""),
    ("bilevel (1-bit) PNG", "bilevel.png", lambda: _save(_product("1", size=(54, 40)), "PNG"), EDITED, ""),
    ("EXIF-rotated JPEG (orientation 6)", "rotated.jpg", _exif_rotated, EDITED, ""),
    ("corrupt EXIF block", "bad_exif.jpg", _corrupt_exif, EDITED, ""),
    ("animated GIF", "animated.gif", lambda: _animated("GIF"), EDITED, ""),
    ("animated WebP", "animated.webp", lambda: _animated("WEBP"), EDITED, ""),
    ("multi-page TIFF", "pages.tiff", _multipage_tiff, EDITED, ""),
    ("BMP", "plain.bmp", lambda: _save(_product(size=(44, 40)), "BMP"), EDITED, ""),
    ("AVIF (converted)", "photo.avif", lambda: _save(_product(size=(64, 48)), "AVIF", quality=80), EDITED, ""),
    ("HEIC (unsupported)", "phone.heic", _heic_header, FAILED_FINAL, r"HEIC.*not supported.*convert"),
    ("non-sRGB ICC profile (Adobe RGB)", "adobe_rgb.jpg",
     lambda: _save(_product(size=(62, 40)), "JPEG", quality=90, icc_profile=adobe_rgb_icc()), EDITED, ""),
    ("corrupt ICC profile", "bad_icc.jpg",
     lambda: _save(_product(size=(66, 40)), "JPEG", quality=90, icc_profile=b"not a profile" * 20), EDITED, ""),
    ("file name with spaces", "with some spaces.png", lambda: _save(_product(size=(46, 40)), "PNG"), EDITED, ""),
    ("unicode file name", "tasse_émaillée_日本.png", lambda: _save(_product(size=(48, 40)), "PNG"), EDITED, ""),
    ("dots in the name", "dots..in..the..name.png", lambda: _save(_product(size=(42, 40)), "PNG"), EDITED, ""),
    ("not an image extension", "notes.txt", lambda: b"not an image", IGNORED, ""),
)


def corpus() -> list[Case]:
    """Every case, generated now (about 1 s; the bomb is built row by row, ~100 KB)."""
    return [Case(kind, filename, build(), expect, reason) for kind, filename, build, expect, reason in CORPUS_BUILDERS]


#: object keys a bucket may hold that must not escape the output location (S3 allows them all)
HOSTILE_KEYS: tuple[str, ...] = (
    "../escape.png", "a/../../b.png", "/leading_slash.png", "//double//slash.png", "dir/./dot.png",
    "with space/and more.png", "ünïcødé/名前.png", "ctrl\x01char.png", "back\\slash.png", "x" * 300 + ".png",
)


def wrong_size_mask_case() -> tuple[bytes, bytes]:
    """A source (80x60) and its mask at another size (40x40): the mask must be scaled, or refused clearly."""
    from PIL import Image

    mask = Image.new("L", (40, 40), 0)
    mask.paste(255, (10, 10, 30, 30))
    return _save(_product(size=(80, 60)), "PNG"), _save(mask, "PNG")


#: recipes that must be refused with an error naming the file and the field
BAD_RECIPES: tuple[tuple[str, dict, str], ...] = (
    ("unknown top-level field", {"name": "r", "colour": "red", "steps": [
        {"id": "a", "prompt": "p", "local": {"op": "exposure", "params": {"stops": 0.3}}}]}, r"colour"),
    ("unknown step field", {"name": "r", "steps": [
        {"id": "a", "prompt": "p", "promt": "typo", "local": {"op": "exposure", "params": {"stops": 0.3}}}]},
     r"steps\[0\].*promt"),
    ("wrong type: steps not a list", {"name": "r", "steps": "white"}, r"steps"),
    ("wrong type: quality a string", {"name": "r", "output": {"quality": "high"}, "steps": [
        {"id": "a", "prompt": "p", "local": {"op": "exposure", "params": {"stops": 0.3}}}]}, r"output.*quality"),
    ("unknown op parameter", {"name": "r", "steps": [
        {"id": "a", "prompt": "p", "local": {"op": "exposure", "params": {"stopz": 1}}}]}, r"stopz"),
    ("no steps", {"name": "r", "steps": []}, r"steps"),
)


def check_outcome(cases: list[Case], records: dict[str, object], ignored: list[str]) -> list[str]:
    """What went wrong with the corpus run: each case's record against its expectation (empty: all held).

    :param records: image id -> :class:`~airflow_image_catalog.workspace.manifest.EditRecord` of the run.
    :param ignored: what discovery ignored (relative keys).
    """
    import re

    from airflow_image_catalog.workspace.manifest import image_id_for

    problems = []
    for case in cases:
        record = records.get(image_id_for(case.filename))
        if case.expect == IGNORED:
            if record is not None or case.filename not in ignored:
                problems.append(f"{case.kind}: expected to be ignored by discovery")
            continue
        if record is None:
            problems.append(f"{case.kind}: no record (lost)")
        elif record.status != case.expect:
            problems.append(f"{case.kind}: {record.status} ({record.error}), expected {case.expect}")
        elif case.reason and not re.search(case.reason, record.error or ""):
            problems.append(f"{case.kind}: reason {record.error!r} does not match {case.reason!r}")
    return problems


DECODE_ALL = """
import json, resource, sys
from airflow_image_catalog.imaging.engine import decode_image
from airflow_image_catalog.tooling.reliability.corpus import corpus
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcomes = {}
for case in corpus():
    try:
        decode_image(case.data)
        outcomes[case.kind] = "decoded"
    except Exception as exc:
        outcomes[case.kind] = type(exc).__name__
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "outcomes": outcomes}))
"""


def decode_peak() -> dict:
    """Decode every case in a fresh process: its peak RSS before and after (MB), and each outcome.

    A decoded 10000x10000 bomb alone would add ~300 MB (RGB); refused from its header, it adds nothing.
    """
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", DECODE_ALL], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])
