"""Prepare a source image for upload to a paid edit provider: fewest bytes, nothing the model uses lost.

Providers downscale large inputs themselves (OpenAI fits gpt-image-1 inputs in 2048x2048 before it
counts image tokens), so sending more pixels only costs bandwidth, time and, for token-priced
models, money. :func:`prepare_upload` downscales to the provider's :class:`UploadLimits`, converts
formats it rejects, bakes EXIF orientation and ICC colour into the pixels (sRGB) and then drops the
metadata, and returns a record of what it did for the run manifest. An image that needs none of
that is passed through byte-identical after reading only its header.

Pure module: Pillow, numpy and the local engine's decoder; no Airflow import.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps

from airflow_image_catalog.backends.base import EditError
from airflow_image_catalog.imaging import containers
from airflow_image_catalog.imaging.engine import decode_image

# The engine's header-only open (refuses empty, unreadable, zero-size and too-many-pixel images before
# any pixel is decoded), its strict full load (never hides truncation) and its ICC -> sRGB conversion.
# Reused, not re-implemented: the JPEG fast path below must read colours exactly as decode_image does.
from airflow_image_catalog.imaging.engine.imageio import _load as load_pixels
from airflow_image_catalog.imaging.engine.imageio import _open as open_header
from airflow_image_catalog.imaging.engine.imageio import _srgb_profile as srgb_profile
from airflow_image_catalog.imaging.engine.imageio import _to_srgb as to_srgb

__all__ = ["UploadLimits", "limits_for", "prepare_upload", "scale_mask", "upload_size"]

MB = 1_000_000  # decimal megabytes: the stricter reading of a provider's "MB"
WRITABLE = ("png", "jpeg", "webp")  # what we encode; every provider in the table accepts these
DEFAULT_MAX_DECODE_PIXELS = 60_000_000  # the engine's decode_image default (and LocalEngineBackend's)
QUALITY = 95  # first lossy encode: visually lossless, and 4:4:4 chroma keeps thin coloured edges (logos, text)
QUALITY_STEPS = (90, 85, 80, 75, 70, 60)  # only to get under max_bytes; below 60 artefacts would be edited in
_ALIASES = {"jpg": "jpeg", "tif": "tiff", "mpo": "jpeg"}  # MPO is a JPEG with extra images appended
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})  # decode_image composites these on white
_UPLOAD_MODES = {  # pixel modes every provider decodes without surprises, per container
    "jpeg": frozenset({"RGB", "L"}),
    "png": frozenset({"RGB", "RGBA", "L", "LA", "P", "1"}),
    "webp": frozenset({"RGB", "RGBA"}),
}
_DEFAULT_MODES = _UPLOAD_MODES["png"]


def _format_name(name: str) -> str:
    name = str(name).strip().lower()
    return _ALIASES.get(name, name)


@dataclass(frozen=True)
class UploadLimits:
    """What one provider/model accepts and actually uses per input image (``None``: no limit).

    :param max_side: longest side the model uses; larger inputs are downscaled to it (never upscaled).
    :param max_pixels: pixel budget the model uses (width x height); applied together with ``max_side``.
    :param formats: accepted upload formats; ``None`` accepts whatever the engine decodes.
    :param max_bytes: largest accepted upload (inclusive); lossy re-encodes step down to fit.
    :param preferred_format: format for converting an opaque photo (TIFF, BMP, HEIC, ...). JPEG q95 by
        default: visually lossless and about a fifth of a PNG's bytes; the model re-renders the pixels
        anyway. Transparency and palette/graphics sources go to PNG regardless (lossless, keeps alpha).
    :param normalize: also fix what is not about size: apply EXIF orientation, convert to 8-bit sRGB, keep
        only the first frame and strip metadata. Off for the local engine, which reads all of it itself.
    """

    max_side: int | None = None
    max_pixels: int | None = None
    formats: tuple[str, ...] | None = WRITABLE
    max_bytes: int | None = None
    preferred_format: str = "jpeg"
    normalize: bool = True

    def __post_init__(self) -> None:
        for name in ("max_side", "max_pixels", "max_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"UploadLimits.{name} must be a positive integer or None, got {value!r}")
        if self.formats is not None:
            formats = tuple(dict.fromkeys(_format_name(f) for f in self.formats))
            if not any(f in WRITABLE for f in formats):
                raise ValueError(f"UploadLimits.formats must include one of {', '.join(WRITABLE)}, got {formats}")
            object.__setattr__(self, "formats", formats)
        preferred = _format_name(self.preferred_format)
        if preferred not in self.writable:
            raise ValueError(f"UploadLimits.preferred_format must be one of {', '.join(self.writable)}, "
                             f"got {self.preferred_format!r}")
        object.__setattr__(self, "preferred_format", preferred)

    @property
    def writable(self) -> tuple[str, ...]:
        """Accepted formats we can encode, in our order of preference (png, jpeg, webp)."""
        return tuple(f for f in WRITABLE if self.formats is None or f in self.formats)

    def accepts(self, fmt: str) -> bool:
        return self.formats is None or fmt in self.formats


# -- the limits table -----------------------------------------------------------------------------------
# Every number says where it comes from; "assumption" marks a choice where no published limit was found.
_PROVIDER_FORMATS = ("png", "jpeg", "webp")

# OpenAI images/edits: png/webp/jpg, each < 50 MB (API reference). gpt-image-1 / -1.5 / -1-mini fit each
# input in 2048x2048 before counting tokens (the documented token formula): more pixels are never used.
OPENAI_GPT_IMAGE_1 = UploadLimits(max_side=2048, formats=_PROVIDER_FORMATS, max_bytes=50 * MB - 1)
# gpt-image-2: no published input formula. Assumption: it uses no more input pixels than its largest
# output (3840 on the long side, 3840x2160 pixels), so anything beyond is bandwidth and tokens for nothing.
OPENAI_GPT_IMAGE_2 = UploadLimits(max_side=3840, max_pixels=3840 * 2160, formats=_PROVIDER_FORMATS,
                                  max_bytes=50 * MB - 1)
# BFL FLUX.1 Kontext works at ~1 MP (its outputs). Assumption: 2 MP / 2048 px keeps headroom for the
# provider's own resampling. Formats and the 20 MB cap (base64 inside a JSON body) are assumptions too.
BFL_KONTEXT = UploadLimits(max_side=2048, max_pixels=2 * 1024 * 1024, formats=_PROVIDER_FORMATS,
                           max_bytes=20 * MB)
# FLUX.2 outputs up to 4 MP (2048x2048); ComfyUI's BFL node downscales references to 2048x2048 before
# upload. Assumption: the model uses no more than that.
BFL_FLUX_2 = UploadLimits(max_side=2048, max_pixels=2048 * 2048, formats=_PROVIDER_FORMATS, max_bytes=20 * MB)
# Firefly Services: Generative Fill/Expand inputs up to 15 MB per call (Adobe enterprise operation
# definitions, which also price a "standard image" as up to 2000x2000); uploads are image/jpeg, png or
# webp. Assumption: 2048 px long side is all the Fill model uses.
FIREFLY = UploadLimits(max_side=2048, formats=_PROVIDER_FORMATS, max_bytes=15 * MB)
# Recraft image-to-image / inpaint: "less than 5 MB, resolution less than 16 MP" (API reference). The
# long side is an assumption from the largest outputs: 2048 (V2/V3, V4), 3072 (V4 Pro).
RECRAFT = UploadLimits(max_side=2048, max_pixels=16 * MB - 1, formats=_PROVIDER_FORMATS, max_bytes=5 * MB - 1)
RECRAFT_V4_PRO = UploadLimits(max_side=3072, max_pixels=16 * MB - 1, formats=_PROVIDER_FORMATS,
                              max_bytes=5 * MB - 1)
# The local engine decodes everything (orientation, ICC, odd modes) and costs nothing: send as is.
LOCAL = UploadLimits(formats=None, normalize=False)
# Unknown backends (gateways, self-hosted): the smallest limits above and the two universal formats.
DEFAULT = UploadLimits(max_side=2048, max_pixels=2048 * 2048, formats=("png", "jpeg"), max_bytes=5 * MB - 1)


def limits_for(backend_name: str, model: str | None = None) -> UploadLimits:
    """The upload limits for a backend (``EditBackend.name``) and its model; unknown -> conservative."""
    backend = (backend_name or "").strip().lower()
    model = (model or "").strip().lower()
    if backend == "local":
        return LOCAL
    if backend in ("openai", "openai_batch"):
        # an empty or unknown model gets the smaller gpt-image-1 limit: it costs detail, never a rejection
        return OPENAI_GPT_IMAGE_2 if model.startswith("gpt-image-2") else OPENAI_GPT_IMAGE_1
    if backend == "bfl":
        return BFL_FLUX_2 if model.startswith("flux-2") else BFL_KONTEXT
    if backend == "firefly":
        return FIREFLY
    if backend == "recraft":
        return RECRAFT_V4_PRO if model.startswith("recraftv4") and "pro" in model else RECRAFT
    return DEFAULT


def upload_size(width: int, height: int, limits: UploadLimits) -> tuple[int, int]:
    """The size :func:`prepare_upload` sends an upright ``width x height`` image at: fits the limits,
    keeps the aspect ratio within half a pixel, never upscales. Pure arithmetic, so cost estimates can
    price the prepared size without decoding anything."""
    scale = 1.0
    if limits.max_side:
        scale = min(scale, limits.max_side / max(width, height))
    if limits.max_pixels:
        scale = min(scale, math.sqrt(limits.max_pixels / (width * height)))
    if scale >= 1.0:
        return width, height
    long, short = max(width, height), min(width, height)
    new_long = max(1, math.floor(long * scale + 1e-9))
    if limits.max_side:
        new_long = min(new_long, limits.max_side)
    while True:  # rounding the short side may overshoot max_pixels by a fraction of a row
        new_short = max(1, round(short * new_long / long))
        if not limits.max_pixels or new_long * new_short <= limits.max_pixels or new_long == 1:
            break
        new_long -= 1
    return (new_long, new_short) if width >= height else (new_short, new_long)


# -- reading the header -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Header:
    format: str
    width: int
    height: int
    mode: str
    orientation: int
    icc: bytes | None
    metadata: tuple[str, ...]
    frames: int
    high_bit: bool
    transparent_palette: bool

    @property
    def upright(self) -> tuple[int, int]:
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def _orientation(img: Image.Image, fmt: str) -> int:
    # PNG's getexif() decodes the whole image when no eXIf chunk precedes the pixels: ask only when present
    if "exif" not in img.info and fmt != "tiff":
        return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # unreadable EXIF: decode_image keeps the stored orientation as well
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _metadata_kinds(fmt: str, info: dict[str, Any]) -> tuple[str, ...]:
    kinds = []
    if info.get("exif"):
        kinds.append("exif")
    if info.get("xmp") or info.get("XML:com.adobe.xmp"):
        kinds.append("xmp")
    if info.get("photoshop"):  # JPEG APP13: Photoshop resources carrying IPTC
        kinds.append("iptc")
    png_text = fmt == "png" and any(isinstance(v, str) for k, v in info.items() if k != "XML:com.adobe.xmp")
    if info.get("comment") or png_text:
        kinds.append("comment")
    if info.get("icc_profile"):
        kinds.append("icc")
    if info.get("mp"):  # MPO: previews / depth maps appended after the main JPEG
        kinds.append("mpf")
    return tuple(kinds)


def _inspect(data: bytes, max_pixels: int) -> _Header:
    """Everything the decision needs, from the header only (the engine refuses bombs here)."""
    img = open_header(data, max_pixels)
    try:
        fmt = _format_name(img.format or "")
        frames = 1
        if img.format != "MPO" and getattr(img, "is_animated", False):
            frames = int(getattr(img, "n_frames", 1))
        mode = img.mode
        return _Header(
            format=fmt, width=img.width, height=img.height, mode=mode,
            orientation=_orientation(img, fmt), icc=img.info.get("icc_profile") or None,
            metadata=_metadata_kinds(fmt, img.info), frames=frames,
            # Pillow reads 48-bit PNGs as 8-bit RGB: the IHDR bit depth (byte 24) tells the file's truth
            high_bit=mode in ("I", "F") or mode.startswith("I;16") or (fmt == "png" and data[24:25] == b"\x10"),
            transparent_palette=mode == "P" and "transparency" in img.info,
        )
    finally:
        img.close()


@lru_cache(maxsize=1)
def _probe() -> Image.Image:
    levels = (0, 48, 96, 144, 192, 255)
    grid = np.array([(r, g, b) for r in levels for g in levels for b in levels], dtype=np.uint8)
    return Image.fromarray(grid.reshape(1, -1, 3), "RGB")


@lru_cache(maxsize=32)
def _is_srgb(icc: bytes) -> bool:
    """Whether converting through this profile to sRGB changes no colour, so the tag can simply be dropped.

    Judged by converting a colour grid rather than by the profile's name: wide-gamut profiles are often
    called "sRGB-something", and sRGB itself ships under many names and versions.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return False
        converted = ImageCms.profileToProfile(_probe(), profile, srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False  # broken profile: let decode_image decide (it falls back to a plain conversion)
    diff = np.abs(np.asarray(converted, dtype=np.int16) - np.asarray(_probe(), dtype=np.int16))
    return int(diff.max()) <= 2


def _profile_name(icc: bytes) -> str:
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or "unnamed"
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return "unreadable"


# -- lossless metadata stripping (no pixel is decoded or re-encoded) ----------------------------------------
_JPEG_KEEP_APP = frozenset({0xE0, 0xEE})  # JFIF; Adobe (its transform flag says how to read the colours)
_PNG_DROP = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP", b"tIME"})
_WEBP_DROP = frozenset({b"EXIF", b"XMP ", b"ICCP"})
_VP8X_META_FLAGS = 0x20 | 0x08 | 0x04  # ICC, EXIF, XMP


def _strip_jpeg(data: bytes) -> bytes:
    """Drop APP1-APP15 (EXIF, XMP, ICC, MPF, IPTC, ...) but JFIF/Adobe, comments, and anything after EOI."""
    segments = containers.jpeg_segments(data)
    scan = segments[-1]
    end = data.find(containers.JPEG_EOI, scan.start)  # the entropy-coded data runs to the first EOI
    if end < 0:
        raise containers.ContainerError("malformed JPEG: no EOI after the scan")
    kept = b"".join(data[s.start:s.end] for s in segments[:-1]
                    if not ((0xE0 <= s.kind <= 0xEF and s.kind not in _JPEG_KEEP_APP) or s.kind == 0xFE))
    return containers.JPEG_SOI + kept + data[scan.start:end + 2]


def _strip_png(data: bytes) -> bytes:
    kept = (data[c.start:c.end] for c in containers.png_chunks(data) if c.kind not in _PNG_DROP)
    return containers.PNG_SIGNATURE + b"".join(kept)


def _strip_webp(data: bytes) -> bytes:
    chunks = []
    for fourcc, payload in containers.riff_chunks(data):
        if fourcc in _WEBP_DROP:
            continue
        if fourcc == b"VP8X":  # the extended header's flags announce the chunks: clear the dropped ones
            payload = bytes([payload[0] & ~_VP8X_META_FLAGS & 0xFF]) + payload[1:]
        chunks.append((fourcc, payload))
    return containers.riff_file(chunks)


_STRIPPERS = {"jpeg": _strip_jpeg, "png": _strip_png, "webp": _strip_webp}


def _strip_container(data: bytes, head: _Header) -> bytes | None:
    """The file without its metadata, or None when its structure is unusual (then it is re-encoded)."""
    stripper = _STRIPPERS.get(head.format)
    try:
        out = stripper(data) if stripper else None
    except containers.ContainerError:
        return None
    if out is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(out))
        with img:
            ok = _format_name(img.format or "") == head.format and img.size == (head.width, head.height)
    except Exception:  # a stripper bug must never ship a broken file: fall back to re-encoding
        return None
    return out if ok else None


def _webp_lossless(data: bytes) -> bool:
    try:
        return any(fourcc == b"VP8L" for fourcc, _ in containers.riff_chunks(data))
    except containers.ContainerError:
        return False


# -- decoding, resizing, encoding ---------------------------------------------------------------------------
def _upright(img: Image.Image) -> Image.Image:
    """EXIF orientation applied exactly as decode_image applies it (unreadable EXIF: as stored)."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        return img


def _decode(data: bytes, head: _Header, target: tuple[int, int], max_pixels: int) -> np.ndarray:
    """decode_image's pixels; a JPEG to be downscaled is decoded at a reduced scale instead.

    libjpeg's DCT scaling (Pillow's ``draft``) decodes at 1/2, 1/4 or 1/8 while staying at least the
    target size: a 24 MP camera JPEG bound for 2048 px decodes ~5x faster into a quarter of the memory,
    and Lanczos finishes from there. Otherwise the same steps as decode_image takes for a JPEG (mode is
    RGB, L or CMYK: orientation, then the embedded profile to sRGB).
    """
    if head.format != "jpeg" or target == head.upright:
        return decode_image(data, max_pixels=max_pixels)
    stored_target = (target[1], target[0]) if head.upright != (head.width, head.height) else target
    img = open_header(data, max_pixels)
    try:
        if img.mode not in ("RGB", "L", "CMYK"):
            return decode_image(data, max_pixels=max_pixels)
        img.draft(img.mode, stored_target)
        load_pixels(img)
        return np.array(to_srgb(_upright(img), img.info.get("icc_profile")), dtype=np.uint8)
    finally:
        img.close()


def _alpha(data: bytes) -> Image.Image | None:
    """The alpha channel, oriented exactly like decode_image's pixels; None when fully opaque."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header check already passed
        with Image.open(io.BytesIO(data)) as img:
            img = _upright(img)
            if img.mode in ("P", "PA"):
                img = img.convert("RGBA")
            if img.mode not in _ALPHA_MODES:
                return None
            alpha = img.getchannel(len(img.getbands()) - 1)  # "A" or premultiplied "a"
    return None if alpha.getextrema()[0] == 255 else alpha


def _uncomposite(rgb: Image.Image, alpha: Image.Image) -> Image.Image:
    """Undo decode_image's compositing on white: colour = 255 - (255 - composite) / alpha.

    Compositing is linear in (colour x alpha, alpha), so resizing the composite and the alpha apart and
    undoing it afterwards is premultiplied resampling (no dark fringes). Rounding error, seen after
    compositing the result on any background, stays within one level. Row blocks bound the float memory.
    """
    comp, a = np.asarray(rgb), np.asarray(alpha)
    out = np.empty((*a.shape, 4), dtype=np.uint8)
    out[..., 3] = a
    for y in range(0, a.shape[0], 256):
        c = comp[y:y + 256].astype(np.float32)
        av = a[y:y + 256, :, None].astype(np.float32) / 255.0
        with np.errstate(divide="ignore", invalid="ignore"):
            colour = np.where(av > 0, 255.0 - (255.0 - c) / av, 255.0)
        out[y:y + 256, :, :3] = np.clip(np.rint(colour), 0, 255)
    return Image.fromarray(out, "RGBA")


def _encode(img: Image.Image, fmt: str, quality: int, *, lossless: bool = False) -> bytes:
    """Encode with no metadata at all (unlike the engine's encode_image, which tags sRGB and drops alpha)."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        options = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
        try:
            img.save(buf, "JPEG", optimize=True, **options)
        except OSError:  # Pillow sizes optimize's buffer at 1 byte/pixel below q95: very fine detail overflows it
            buf = io.BytesIO()
            img.save(buf, "JPEG", **options)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=6)
    else:
        img.save(buf, "WEBP", quality=quality, method=4, lossless=lossless)
    return buf.getvalue()


def _output_format(head: _Header, has_alpha: bool, limits: UploadLimits) -> str:
    writable = limits.writable
    if head.format in writable and not (has_alpha and head.format == "jpeg"):
        return head.format  # keep what the source is: a PNG stays lossless, a JPEG is not bloated
    if has_alpha:
        for fmt in ("png", "webp"):
            if fmt in writable:
                return fmt
    if (head.format == "gif" or head.mode in ("P", "1")) and "png" in writable:
        return "png"  # graphics: PNG is lossless and usually smaller than a JPEG of flat colour
    return limits.preferred_format


def _fit_bytes(img: Image.Image, fmt: str, limits: UploadLimits, lossless: bool) -> tuple[bytes, str, int | None]:
    """Encode at full quality; over max_bytes, step lossy quality down in the accepted lossy formats."""
    quality = None if fmt == "png" or lossless else QUALITY
    out = _encode(img, fmt, quality or QUALITY, lossless=lossless)
    if limits.max_bytes is None or len(out) <= limits.max_bytes:
        return out, fmt, quality
    has_alpha = "A" in img.getbands()
    lossy = [f for f in ("jpeg", "webp") if f in limits.writable and not (has_alpha and f == "jpeg")]
    lossy.sort(key=lambda f: f != fmt)  # the current format first
    for candidate in lossy:
        for step in QUALITY_STEPS:
            out = _encode(img, candidate, step)
            if len(out) <= limits.max_bytes:
                return out, candidate, step
    tried = f"{', '.join(lossy)} down to quality {QUALITY_STEPS[-1]}" if lossy else \
        f"no accepted lossy format{' keeps transparency' if has_alpha else ''}"
    raise EditError(f"image too large to upload: {img.width}x{img.height} {fmt} is {len(out)} bytes over the "
                    f"provider's limit of {limits.max_bytes} bytes ({tried})", code="image_too_large",
                    retryable=False)


def _normalise_actions(head: _Header, icc_srgb: bool) -> list[str]:
    """What decode_image does to this image, in words for the manifest."""
    actions = []
    if head.frames > 1:
        actions.append(f"kept the first of {head.frames} frames")
    if head.orientation != 1:
        actions.append(f"rotated upright (EXIF orientation {head.orientation})")
    if head.mode == "CMYK" or not icc_srgb:
        source = "CMYK" if head.mode == "CMYK" else "colour"
        profile = f" (profile {_profile_name(head.icc)!r})" if head.icc and not icc_srgb else ""
        actions.append(f"converted {source} to sRGB{profile}")
    if head.high_bit:
        actions.append("converted 16-bit to 8-bit")
    return actions


def _record(actions: list[str], source: dict[str, Any], fmt: str, size: tuple[int, int], out: bytes,
            quality: int | None = None) -> dict[str, Any]:
    upload: dict[str, Any] = {"format": fmt, "width": size[0], "height": size[1], "bytes": len(out)}
    if quality is not None:
        upload["quality"] = quality
    return {"actions": actions, "source": source, "upload": upload}


def prepare_upload(data: bytes, limits: UploadLimits, *, verify: bool = False,
                   max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS) -> tuple[bytes, dict[str, Any]]:
    """The bytes to upload for one source image, and a manifest record of what was done to them.

    Record: ``{"actions": [...], "source": {format, width, height, bytes[, orientation]},
    "upload": {format, width, height, bytes[, quality]}}``; ``actions`` is empty for a pass-through.

    - Within limits, accepted format, nothing to fix: the same bytes, after reading only the header.
    - Only metadata to drop (EXIF, XMP, IPTC, comments, an sRGB ICC tag, MPO extras): dropped from the
      container (JPEG segments, PNG chunks, WebP chunks) without touching the compressed pixels.
    - Otherwise decoded once by the engine (EXIF orientation applied, colour converted to sRGB through
      its ICC profile, CMYK / 16-bit / palette handled), downscaled with Lanczos, re-encoded with no
      metadata. Transparency is kept (PNG, or WebP); the format is kept when accepted, else converted.
    - Over ``max_bytes``: lossy quality steps; still too large -> ``EditError(code="image_too_large")``.

    Corrupt, truncated or over-large images raise the engine's ``ImageDecodeError`` (a decompression
    bomb is refused from its header, before any pixel is decoded). The pass-through paths read only the
    header, so a truncated body goes unnoticed unless ``verify`` decodes it (callers that already ran
    ``imaging.preflight`` need not).
    """
    head = _inspect(data, max_decode_pixels)
    source: dict[str, Any] = {"format": head.format, "width": head.width, "height": head.height, "bytes": len(data)}
    if head.orientation != 1:
        source["orientation"] = head.orientation
    target = upload_size(*head.upright, limits)
    icc_srgb = head.icc is None or _is_srgb(head.icc)
    pixels_ok = (target == head.upright and limits.accepts(head.format)
                 and (limits.max_bytes is None or len(data) <= limits.max_bytes))
    if pixels_ok and limits.normalize:
        pixels_ok = (head.orientation == 1 and icc_srgb and head.frames == 1 and not head.high_bit
                     and head.mode in _UPLOAD_MODES.get(head.format, _DEFAULT_MODES))
    if pixels_ok:
        strip = limits.normalize and bool(head.metadata)
        if verify:
            decode_image(data, max_pixels=max_decode_pixels)
        out = _strip_container(data, head) if strip else data
        if out is not None:
            actions = [f"stripped metadata ({', '.join(head.metadata)})"] if strip else []
            return out, _record(actions, source, head.format, (head.width, head.height), out)

    rgb = _decode(data, head, target, max_decode_pixels)  # upright, sRGB, 8-bit; alpha composited on white
    alpha = _alpha(data) if head.mode in _ALPHA_MODES or head.transparent_palette else None
    actions = _normalise_actions(head, icc_srgb)
    img = Image.fromarray(rgb, "RGB")
    del rgb
    if target != head.upright:
        actions.append(f"downscaled {head.upright[0]}x{head.upright[1]} -> {target[0]}x{target[1]}")
    if target != img.size:
        # reducing_gap: box-reduce by an integer factor first, then Lanczos; indistinguishable and faster
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        if alpha is not None:
            alpha = alpha.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    fmt = _output_format(head, alpha is not None, limits)
    if alpha is not None and fmt == "jpeg":
        actions.append("flattened transparency onto white (no accepted format keeps alpha)")
        alpha = None  # decode_image's composite on white is exactly the flattened image
    if alpha is not None:
        img = _uncomposite(img, alpha)
    if head.mode in ("1", "L", "LA", "La", "I", "F") or head.mode.startswith("I;16"):
        img = img.convert("LA" if alpha is not None else "L")  # grey stays one channel: a third of the bytes
    if fmt != head.format:
        actions.append(f"converted {head.format} -> {fmt}")
    lossless = fmt == "webp" and head.format == "webp" and _webp_lossless(data)
    out, final_fmt, quality = _fit_bytes(img, fmt, limits, lossless)
    if final_fmt != fmt or (quality is not None and quality < QUALITY):
        actions.append(f"re-encoded as {final_fmt} quality {quality} to fit {limits.max_bytes} bytes")
    if head.metadata:
        actions.append(f"stripped metadata ({', '.join(head.metadata)})")
    return out, _record(actions, source, final_fmt, img.size, out, quality)


def scale_mask(mask_bytes: bytes, size: tuple[int, int]) -> bytes:
    """Resize a per-image mask to the size its image is uploaded at, as a PNG without metadata.

    Providers that require the mask to match the image (OpenAI: same size as the first image; Recraft
    inpaint) reject a full-size mask once :func:`prepare_upload` downscaled the image: pass
    ``(record["upload"]["width"], record["upload"]["height"])``. Nearest neighbour, so a hard mask gets
    no new grey levels at its edges, and the mode (alpha, palette and its transparency, L, 1) is kept.
    The mask is taken as drawn on the upright image (as the engine reads masks); a mask already at
    ``size`` in PNG is returned unchanged.
    """
    width, height = size
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (width, height)):
        raise ValueError(f"mask size must be two positive integers, got {size!r}")
    img = open_header(mask_bytes, DEFAULT_MAX_DECODE_PIXELS)
    try:
        if img.size == (width, height) and img.format == "PNG":
            return mask_bytes
        load_pixels(img)
        scaled = img.resize((width, height), Image.Resampling.NEAREST)
    finally:
        img.close()
    if scaled.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        scaled = scaled.convert("RGBA" if "A" in scaled.getbands() else "L")
    transparency = scaled.info.get("transparency")
    buf = io.BytesIO()
    scaled.save(buf, "PNG", **({"transparency": transparency} if transparency is not None else {}))
    return buf.getvalue()

