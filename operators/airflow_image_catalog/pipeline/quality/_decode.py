"""Decoding for the quality gate: the source with its alpha channel, the edit at the scale the checks need.

The alpha channel is the one thing that says exactly what the product of a transparent product
shot is, so the gate keeps it whenever the engine's rule (``has_transparency``) says the image
is a cut-out, as the engine's ``decode_image(keep_alpha=True)`` does; but that always
decodes at full size, while a 2000x2000 JPEG decoded in libjpeg's DCT-scaling ("draft") mode
at 1/2 costs about half and loses nothing a 1000 px comparison uses (Pillow ``Image.draft``:
https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.Image.draft). Colour
management stays the engine's: files whose ICC profile is not sRGB go through its decoder.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

#: the decoder refuses images above this many pixels, as the engine's does (decompression bombs)
MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class Decoded:
    """RGB uint8 pixels (transparency composited onto white), the alpha channel if the file had one,
    the factor between the decoded and the stored size (1 = full size, 2 = half, ...) and the container
    format (Pillow's name, lower case; "" where the pixels did not come from a file)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    scale: int
    full_size: tuple[int, int]  # (width, height) as stored
    format: str = ""


def _is_srgb(icc: bytes | None) -> bool:
    if not icc:
        return True
    from PIL import ImageCms

    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False
    return "srgb" in desc.lower()


def decode(data: bytes, *, min_side: int | None = None) -> Decoded:
    """Decode ``data``; a JPEG may come back reduced by 2, 4 or 8 as long as its shorter side stays >= ``min_side``.

    Raises the engine's ``ImageDecodeError`` for bytes that are not a readable image.
    """
    from PIL import Image, ImageOps

    from airflow_image_catalog.imaging.engine import decode_image
    from airflow_image_catalog.imaging.engine.errors import ImageDecodeError
    from airflow_image_catalog.imaging.engine.imageio import has_transparency

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        full, fmt = img.size, (img.format or "").lower()
        if full[0] * full[1] > MAX_PIXELS:
            raise ImageDecodeError(f"image of {full[0]}x{full[1]} px is above the {MAX_PIXELS:,} px limit")
        icc = img.info.get("icc_profile")
        if not _is_srgb(icc) or img.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA"):
            return Decoded(decode_image(data), None, 1, full, fmt)  # CMYK, 16-bit, wide gamut: the engine converts
        if img.format == "JPEG" and min_side:
            img.draft("RGB", (max(1, full[0] * min_side // min(full)), max(1, full[1] * min_side // min(full))))
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # (not a copy of every image that needs no turn)
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same "cannot read this" to the gate
        raise ImageDecodeError(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
    scale = max(1, round(max(full) / max(img.size)))
    alpha = None
    if img.mode in ("P", "PA") and ("transparency" in img.info or img.mode == "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"))
        if not has_transparency(alpha):  # the engine's rule: stray 254s are a photo, not a cut-out
            alpha = None
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))  # (an RGB convert is one more copy)
    if alpha is not None:
        a = alpha.astype(np.float32)[..., None] / 255.0
        rgb = np.clip(rgb * a + 255.0 * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)
    return Decoded(np.ascontiguousarray(rgb), alpha, scale, full, fmt)
