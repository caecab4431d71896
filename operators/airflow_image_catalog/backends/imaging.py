"""Small image helpers the network backends share (masks, sizes, final output conformance)."""

from __future__ import annotations

import io

from airflow_image_catalog.backends.base import EditError, EditResult, ImageContext
from airflow_image_catalog.recipes import OutputSpec, RecipeStep


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image header, without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise EditError(f"not a readable image: {exc}") from None


def preflight(source: bytes) -> None:
    """Decode the whole upload before a paid call: a corrupt or truncated image fails here, free.

    (:func:`image_size` reads only the header, which a truncated JPEG still has.)
    """
    from airflow_image_catalog.imaging.engine import decode_image

    decode_image(source)


def provider_image(data: bytes, what: str) -> bytes:
    """``data`` if it is a whole, readable image: a provider's answer is checked before it is used.

    An answer that is not an image (an HTML error page, a truncated download) is the provider's or
    the network's fault, not the upload's: it fails retryable (``bad_response``), and a rerun's
    request with the same idempotency key gets the provider's stored answer.
    """
    from PIL import Image, UnidentifiedImageError

    problem = "empty" if not data else None
    if problem is None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise EditError(f"{what}: the provider's answer is not a readable image ({len(data)} bytes; {problem})",
                        retryable=True, code="bad_response")
    return data


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def edit_region(step: RecipeStep, image: bytes, context: ImageContext):
    """The step's mask as a bool array (True = edit here), or None without a mask.

    ``subject`` / ``background`` come from the local engine's segmentation; a mask
    file is white (or transparent) where the edit goes, and must match the image size.
    """
    import numpy as np
    from PIL import Image

    if step.mask is None:
        return None
    if step.mask in ("subject", "background"):
        from airflow_image_catalog.imaging.engine import decode_image, find_subject

        subject = find_subject(decode_image(image, keep_alpha=True))  # a cut-out's alpha is its subject
        return subject if step.mask == "subject" else ~subject
    want = image_size(image)
    with Image.open(io.BytesIO(context.read(step.mask))) as mask:
        if mask.size != want and mask.size == context.source_size:  # the upload was downscaled
            mask = mask.resize(want, Image.Resampling.NEAREST)
        if mask.size != want:
            raise EditError(f"step {step.id}: mask {context.resolve(step.mask)} is {mask.size[0]}x{mask.size[1]}, "
                            f"image is {want[0]}x{want[1]}", code="invalid_mask")
        if "A" in mask.getbands() and np.asarray(mask.getchannel("A")).min() < 255:
            return np.asarray(mask.getchannel("A")) < 128
        return np.asarray(mask.convert("L")) > 127


def alpha_mask_png(region) -> bytes:
    """OpenAI's mask format: RGBA PNG, alpha 0 where the edit goes."""
    import numpy as np
    from PIL import Image

    rgba = np.zeros((*region.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(region, 0, 255)
    return _png(Image.fromarray(rgba, "RGBA"))


def white_mask_png(region) -> bytes:
    """A grayscale PNG mask, white (255) where the edit goes, black elsewhere (Firefly, Recraft)."""
    import numpy as np
    from PIL import Image

    return _png(Image.fromarray(np.where(region, 255, 0).astype(np.uint8), "L"))


def encode_output(image, output: OutputSpec) -> bytes:
    """Encode an edited RGB/RGBA array as the recipe's output asks: fitted to its size (padded, never
    cropped), transparency kept where the output keeps alpha, else composited on white."""
    from airflow_image_catalog.imaging.engine import apply_op, encode_image, flatten

    if output.size:
        width, height = (int(v) for v in output.size.split("x"))
        if image.shape[:2] != (height, width):
            image = apply_op("fit_canvas", image, {"width": width, "height": height, "product_fill": 0})
    if not output.keeps_alpha:
        image = flatten(image)
    return encode_image(image, format=output.format, quality=output.quality)


def conform(data: bytes, output: OutputSpec) -> tuple[bytes, int, int]:
    """Make a provider's image match the recipe's output (size padded, never cropped; format; alpha)."""
    from PIL import Image

    provider_image(data, "result")
    with Image.open(io.BytesIO(data)) as img:
        fmt, (width, height) = (img.format or "").lower(), img.size
        transparent = "A" in img.getbands() or "transparency" in img.info
    wanted = tuple(int(v) for v in output.size.split("x")) if output.size else (width, height)
    if fmt == output.format and (width, height) == wanted and (output.keeps_alpha or not transparent):
        return data, width, height
    from airflow_image_catalog.imaging.engine import decode_image

    image = decode_image(data, keep_alpha=output.keeps_alpha)
    return encode_output(image, output), wanted[0], wanted[1]


def final_result(image: bytes, recipe, usage: list, steps: list):
    """The last step's image conformed to the recipe's output, as an :class:`EditResult`."""
    output = recipe.step_output(recipe.steps[-1])
    data, width, height = conform(image, output)
    return EditResult(data, output.format, width, height, usage=usage, steps=steps)
