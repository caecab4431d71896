"""Bytes <-> RGB uint8 arrays, with colour management and strict error reporting.

Catalog uploads come from anywhere (phones with EXIF rotation, print CMYK
JPEGs, 16-bit PNGs, palettes with transparency). Everything is normalised to
sRGB RGB uint8 so ops never have to care, and every failure names its reason
so ops can tell the uploader what to fix.
"""

from __future__ import annotations

import io
import re
import warnings
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, OpParamError

ENCODE_FORMATS = ("jpeg", "png", "webp", "tiff")
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def _srgb_icc_bytes() -> bytes:
    return _srgb_profile().tobytes()


#: ISO-BMFF brands (the ``ftyp`` box) of image formats this build cannot decode, and what to say
_BMFF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"hevc": "HEIC",
                b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


def _unidentified(data: bytes) -> str:
    """Why Pillow could not identify ``data``: a named container it cannot read, or not an image at all."""
    if data[4:8] == b"ftyp":
        brands = [data[8:12]] + [data[i:i + 4] for i in range(16, min(len(data), 64), 4)]
        name = next((_BMFF_BRANDS[b] for b in brands if b in _BMFF_BRANDS), None)
        if name:
            return (f"{name} images are not supported by this installation: convert to JPEG or PNG "
                    f"({len(data)} bytes)")
    return f"not an image: unidentified format ({len(data)} bytes)"


def _bomb(exc: Exception, max_pixels: int) -> ImageDecodeError:
    """Pillow's own bomb refusal (far over its limit, raised while reading the header), in our words."""
    declared = re.search(r"\((\d+) pixels\)", str(exc))
    count = declared.group(1) if declared else "?"
    return ImageDecodeError(f"too many pixels: {count} declared exceeds the limit of {max_pixels} "
                            f"(refused from the header, before decoding)")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty file: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels decides
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(_unidentified(data)) from exc
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, max_pixels) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt image header: {exc}") from exc
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise ImageDecodeError(f"too many pixels: {w}x{h} = {w * h} exceeds the limit of {max_pixels}")
    return img


def _load(img: Image.Image) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped the global: refuse to hide corruption
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        if img.format == "PNG":
            _verify_png(img)
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"too many pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"truncated or corrupt image data ({img.format}): {exc}") from exc


def _verify_png(img: Image.Image) -> None:
    """Check every chunk's CRC (Pillow's ``load`` skips them for pixel data): a flipped bit in transit
    would otherwise decode into wrong pixels without a word. Reads the bytes again; decodes nothing."""
    fp = getattr(img, "fp", None)
    if fp is None or not hasattr(fp, "getvalue"):
        return
    with Image.open(io.BytesIO(fp.getvalue())) as again:
        again.verify()


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert the colour part (RGB / L / CMYK) through its embedded profile to sRGB."""
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, _srgb_profile(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # broken or mismatched profile: fall back to a plain conversion
    return img.convert("RGB")


def _high_bit_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float greyscale to 8-bit L."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        finite = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        out = np.clip(finite * scale, 0, 255)
    else:
        arr = arr.astype(np.float64)
        # mode I holds 8-bit values for some decoders and 16-bit for others
        out = np.clip(arr / 257.0, 0, 255) if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else arr
    return Image.fromarray(np.round(out).astype(np.uint8), "L")


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


#: share of pixels that must be under half opaque before an alpha channel counts as transparency (a
#: cut-out product); below it (an editor's stray 254s, an all-opaque RGBA export) the image is a photo
MIN_TRANSPARENT_SHARE = 0.001


def has_transparency(alpha: np.ndarray) -> bool:
    """Whether an 8-bit alpha channel really cuts something out (see MIN_TRANSPARENT_SHARE)."""
    return bool((alpha < 128).mean() >= MIN_TRANSPARENT_SHARE)


def decode_image(data: bytes, *, max_pixels: int = 60_000_000, keep_alpha: bool = False) -> np.ndarray:
    """Decode any PIL-readable image to sRGB uint8: RGB (H, W, 3), composited on white.

    With ``keep_alpha`` a source whose alpha channel cuts the product out (:func:`has_transparency`)
    comes back RGBA (H, W, 4) with straight alpha instead: the alpha is then the product's exact mask.
    """
    img = _open(data, max_pixels)
    _load(img)
    icc = img.info.get("icc_profile")
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        pass  # unreadable EXIF: keep the stored orientation rather than fail the upload
    mode = img.mode
    alpha: np.ndarray | None = None
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
        icc = None  # palette colours are assumed sRGB
    if mode in ("RGBa", "La"):  # premultiplied: back to straight colours
        img = img.convert(mode[0:-1] + "A")
        mode = img.mode
    if mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"))
        base = mode[:-1]
        img = Image.merge(base, img.split()[:-1])
        mode = base
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode in ("I", "F") or mode.startswith("I;16"):
        img = _high_bit_to_l(img)
        mode = "L"
        icc = None
    if mode in ("RGB", "L", "CMYK"):
        img = _to_srgb(img, icc)
    elif mode in ("YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    else:
        raise ImageDecodeError(f"unsupported image mode {img.mode!r}")
    rgb = np.array(img, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageDecodeError(f"unsupported image mode {img.mode!r} (decoded shape {rgb.shape})")
    if alpha is not None:
        if keep_alpha and has_transparency(alpha):
            return np.dstack([rgb, alpha])
        rgb = _composite_on_white(rgb, alpha)
    return rgb


def _normalise_format(format: str) -> str:
    fmt = _FORMAT_ALIASES.get(str(format).lower(), str(format).lower())
    if fmt not in ENCODE_FORMATS:
        raise OpParamError("format", f"format must be one of {', '.join(ENCODE_FORMATS)}, got {format!r}")
    return fmt


#: formats that carry an alpha channel (JPEG cannot)
ALPHA_FORMATS = ("png", "webp", "tiff")


def encode_image(image: np.ndarray, *, format: str = "jpeg", quality: int = 92) -> bytes:
    """Encode an RGB (or, for PNG/WebP/TIFF, RGBA) uint8 array as sRGB-tagged bytes with no other metadata."""
    fmt = _normalise_format(format)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise OpParamError("quality", f"quality must be an integer between 1 and 100, got {quality!r}")
    arr = np.asarray(image)
    channels = arr.shape[2] if arr.ndim == 3 else 0
    if arr.dtype != np.uint8 or channels not in (3, 4):
        raise OpParamError(
            "image", f"image must be an RGB or RGBA uint8 array (H, W, 3|4), got {arr.dtype} {arr.shape}"
        )
    if channels == 4 and fmt not in ALPHA_FORMATS:
        raise OpParamError(
            "format", f"{fmt} cannot carry transparency: flatten the image first or encode as png or webp"
        )
    img = Image.fromarray(np.ascontiguousarray(arr), "RGBA" if channels == 4 else "RGB")
    buf = io.BytesIO()
    kwargs: dict = {"icc_profile": _srgb_icc_bytes()}
    if fmt == "jpeg":
        kwargs.update(quality=quality, optimize=True, subsampling=0 if quality >= 90 else 2)
    elif fmt == "png":
        kwargs.update(optimize=False, compress_level=6)
    elif fmt == "webp":
        kwargs.update(quality=quality, method=4)
        if channels == 4:
            kwargs.update(alpha_quality=100)
    elif fmt == "tiff":
        kwargs.update(compression="tiff_adobe_deflate")
    img.save(buf, format=fmt.upper(), **kwargs)
    return buf.getvalue()


def image_format(data: bytes) -> str | None:
    """Sniff the container format from the header without decoding pixels."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
    except Exception:  # noqa: BLE001 - sniffing must never raise
        return None
    return fmt.lower() if fmt else None
