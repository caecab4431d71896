"""What the OpenAI images/edits API refuses, as the local edit service reads the provider's documents.

This is the service's own reading, written apart from the backend's pre-flight checks
(``airflow_image_catalog.backends.openai_images``) so that each can catch the other's mistakes:
tests send the backend's requests here and check the refusals case by case. Sources:

- the official SDK's parameter notes (``openai/types/image_edit_params.py``, openai-python 3.57):
  up to 16 ``png`` / ``webp`` / ``jpg`` images under 50 MB; a PNG mask under 4 MB with the first
  image's dimensions; prompt at most 32,000 characters; ``n`` 1-10; ``output_compression`` 0-100 for
  webp/jpeg; ``input_fidelity`` high/low on gpt-image-1.5, only low on gpt-image-1-mini, omitted for
  gpt-image-2; gpt-image-2 sizes with sides divisible by 16, ratio within 1:3..3:1, at most 3840x2160;
  the others 1024x1024 / 1536x1024 / 1024x1536 / auto; gpt-image-1 shut down 2026-10-23; dall-e-2 and
  dall-e-3 retired 2026-05-12;
- Azure's image-generation how-to (``articles/foundry/openai/how-to/dall-e.md``): gpt-image-2's
  total pixel count between 655,360 and 8,294,400;
- reported API answers for file parts that are not images (openai/openai-node#1468,
  openai/openai-ruby#147): 400 ``Invalid file 'image': unsupported mimetype ('application/octet-stream').
  Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'.``

Error codes follow OpenAI's error shape ``{"error": {message, type, param, code}}`` and its usual
codes (``invalid_value``, ``unsupported_parameter``, ``integer_above_max_value``,
``string_above_max_length``, ``model_not_found``); where the API's exact code for a case is not
published (the mask checks), ``invalid_value`` with the field in ``param``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from airflow_image_catalog.tooling.service.protocol import BadRequest
from airflow_image_catalog.tooling.service.tiers import TIERS

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_MASK_BYTES = 4 * 1024 * 1024
MAX_PROMPT = 32_000
FIXED = ("1024x1024", "1536x1024", "1024x1536")
GONE = {"gpt-image-1": "2026-10-23", "dall-e-2": "2026-05-12", "dall-e-3": "2026-05-12"}
FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("transparent", "opaque", "auto")
QUALITIES = ("low", "medium", "high", "auto")
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Model:
    """One model family's rules: custom sizes or the fixed ones, the input fidelities it takes."""

    name: str
    custom_sizes: bool
    fidelities: tuple[str, ...] | None  # None: the parameter is not taken at all


MODELS = {
    "gpt-image-2": Model("gpt-image-2", True, None),
    "gpt-image-1.5": Model("gpt-image-1.5", False, ("high", "low")),
    "gpt-image-1-mini": Model("gpt-image-1-mini", False, ("low",)),
    # EMULATED tiers (:mod:`.tiers`), not OpenAI models: the gpt-image-1.5 rules (fixed sizes, its token table)
    **{name: Model(name, False, ("high", "low")) for name in TIERS},
}


@dataclass
class Part:
    """An uploaded image as the service received it: declared content type and bytes."""

    field: str
    content_type: str | None
    data: bytes


def model_rules(model: str) -> Model:
    family = _DATED.sub("", model)
    if family in GONE:
        raise BadRequest("model_not_found", f"The model `{model}` does not exist or you do not have access to it. "
                         f"It was shut down on {GONE[family]}.", "model", status=404)
    if family in MODELS:
        return MODELS[family]
    raise BadRequest("model_not_found", f"The model `{model}` does not exist or you do not have access to it.",
                     "model", status=404)


def _int(form: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = form.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest("invalid_type", f"Invalid type for '{name}': expected an integer, but got {value!r}.",
                         name) from None
    if number < low:
        raise BadRequest("integer_below_min_value", f"Invalid '{name}': integer below minimum value. Expected a "
                         f"value >= {low}, but got {number} instead.", name)
    if number > high:
        raise BadRequest("integer_above_max_value", f"Invalid '{name}': integer above maximum value. Expected a "
                         f"value <= {high}, but got {number} instead.", name)
    return number


def _enum(form: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(form.get(name) or default)
    if value not in allowed:
        raise BadRequest("invalid_value", f"Invalid value: '{value}'. Supported values are: "
                         f"{', '.join(repr(a) for a in allowed)}.", name)
    return value


def check_size(rules: Model, size: str) -> None:
    if size == "auto" or size in FIXED:
        return
    if not rules.custom_sizes:
        raise BadRequest("invalid_value", f"Invalid value: '{size}'. Supported values are: "
                         f"{', '.join(repr(s) for s in (*FIXED, 'auto'))}.", "size")
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if not match:
        raise BadRequest("invalid_value", f"Invalid size '{size}': expected WIDTHxHEIGHT.", "size")
    width, height = int(match[1]), int(match[2])
    problems = []
    if width % 16 or height % 16:
        problems.append("width and height must both be divisible by 16")
    if max(width, height) > 3 * max(min(width, height), 1):
        problems.append("the aspect ratio must be between 1:3 and 3:1")
    if max(width, height) > 3840:
        problems.append("the longest edge must be at most 3840 pixels")
    if not 655_360 <= width * height <= 8_294_400:
        problems.append(f"the total pixel count must be between 655,360 and 8,294,400 (got {width * height:,})")
    if problems:
        raise BadRequest("invalid_value", f"Invalid size '{size}' for {rules.name}: " + "; ".join(problems) + ".",
                         "size")


def check_image(part: Part) -> tuple[int, int]:
    """An input image's declared type, size and readability; its (width, height)."""
    from PIL import Image, UnidentifiedImageError

    if part.content_type not in IMAGE_TYPES:
        raise BadRequest("unsupported_file_mimetype", f"Invalid file '{part.field}': unsupported mimetype "
                         f"('{part.content_type}'). Supported file formats are 'image/jpeg', 'image/png', and "
                         "'image/webp'.", part.field)
    if len(part.data) > MAX_IMAGE_BYTES:
        raise BadRequest("invalid_value", f"Invalid file '{part.field}': files must be under 50 MB.", part.field)
    try:
        with Image.open(io.BytesIO(part.data)) as img:
            fmt = (img.format or "").lower()
            size = img.size
    except (UnidentifiedImageError, OSError):
        raise BadRequest("invalid_image", f"Invalid file '{part.field}': the image could not be read.",
                         part.field) from None
    if fmt not in ("png", "jpeg", "webp") or f"image/{fmt}" != part.content_type:
        raise BadRequest("invalid_image_format", f"Invalid file '{part.field}': the file is {fmt or 'not an image'}, "
                         f"sent as {part.content_type}.", part.field)
    return size


def check_mask(part: Part, first: tuple[int, int]):
    """The mask: a PNG under 4 MB with an alpha channel and the first image's size; alpha 0 = edit here."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if part.content_type != "image/png":
        raise BadRequest("unsupported_file_mimetype", f"Invalid file 'mask': unsupported mimetype "
                         f"('{part.content_type}'). Supported file formats are 'image/png'.", "mask")
    if len(part.data) > MAX_MASK_BYTES:
        raise BadRequest("invalid_value", "Invalid file 'mask': the mask must be under 4 MB.", "mask")
    try:
        with Image.open(io.BytesIO(part.data)) as img:
            if img.format != "PNG" or "A" not in img.getbands():
                raise BadRequest("invalid_value", "Invalid mask: it must be a PNG with an alpha channel "
                                 "(transparent where the image is edited).", "mask")
            if img.size != first:
                raise BadRequest("invalid_value", f"Invalid mask: its size {img.size[0]}x{img.size[1]} does not "
                                 f"match the image's {first[0]}x{first[1]}.", "mask")
            return np.asarray(img.getchannel("A")) < 128
    except (UnidentifiedImageError, OSError):
        raise BadRequest("invalid_value", "Invalid mask: the file could not be read.", "mask") from None


@dataclass
class Checked:
    """A request that passed: what the edit and its usage need."""

    model: str
    rules: Model
    prompt: str
    n: int
    size: str
    quality: str
    output_format: str
    compression: int
    background: str
    fidelity: str | None
    sizes: list[tuple[int, int]]
    mask: Any


def check_edit(form: dict[str, Any], images: list[Part], mask: Part | None) -> Checked:
    """Every rule above, in the order the API would meet them; a :class:`BadRequest` names the field."""
    model = str(form.get("model") or "gpt-image-2")
    rules = model_rules(model)
    prompt = str(form.get("prompt") or "")
    if not prompt.strip():
        raise BadRequest("missing_required_parameter", "Missing required parameter: 'prompt'.", "prompt")
    if len(prompt) > MAX_PROMPT:
        raise BadRequest("string_above_max_length", f"Invalid 'prompt': string too long. Expected a string with "
                         f"maximum length {MAX_PROMPT}, but got a string with length {len(prompt)} instead.", "prompt")
    if not images:
        raise BadRequest("missing_required_parameter", "Missing required parameter: 'image'.", "image")
    if len(images) > MAX_IMAGES:
        raise BadRequest("invalid_value", f"Invalid 'image': at most {MAX_IMAGES} images, got {len(images)}.", "image")
    n = _int(form, "n", 1, 10, 1)
    quality = _enum(form, "quality", QUALITIES, "auto")
    output_format = _enum(form, "output_format", FORMATS, "png")
    background = _enum(form, "background", BACKGROUNDS, "auto")
    if background == "transparent" and output_format == "jpeg":
        raise BadRequest("invalid_value", "Transparent backgrounds need output_format png or webp.", "background")
    compression = 100
    if form.get("output_compression") not in (None, ""):
        if output_format == "png":
            raise BadRequest("invalid_value", "output_compression is only supported for the webp and jpeg output "
                             "formats.", "output_compression")
        compression = _int(form, "output_compression", 0, 100, 100)
    fidelity = form.get("input_fidelity")
    if fidelity not in (None, ""):
        if rules.fidelities is None:
            raise BadRequest("unsupported_parameter", f"Unsupported parameter: 'input_fidelity' is not supported "
                             f"with {rules.name}; omit it (inputs are always processed at high fidelity).",
                             "input_fidelity")
        if fidelity not in rules.fidelities:
            raise BadRequest("invalid_value", f"Invalid value: '{fidelity}'. {rules.name} supports input_fidelity "
                             f"{', '.join(repr(f) for f in rules.fidelities)}.", "input_fidelity")
    else:
        fidelity = None
    size = str(form.get("size") or "auto")
    check_size(rules, size)
    sizes = [check_image(part) for part in images]
    region = check_mask(mask, sizes[0]) if mask is not None else None
    return Checked(model, rules, prompt, n, size, quality, output_format, compression, background,
                   fidelity, sizes, region)
