"""Token estimators for OpenAI's gpt-image models: pure arithmetic on sizes and text, no I/O.

What is documented (DESIGN.md "Tokens and prices") is reproduced exactly: gpt-image-1 input
image tokens (512-px tiles, low/high fidelity), the output-token table for the three fixed
sizes at low/medium/high quality, and 100 tokens per partial image. Everything else is a
stated estimate with a band, so a budget check sees how sure the figure is:

* prompt text tokens: about 4 characters per token (band ``TEXT_BAND``);
* output tokens for custom sizes (gpt-image-2 takes any WxH): the documented table is exactly a
  grid formula, extended to other sizes (band ``ESTIMATE_BAND``);
* gpt-image-2 input and output tokens: OpenAI publishes no formula (band ``ESTIMATE_BAND``,
  see :func:`gpt_image_2_estimate`).

The cost ledger reconciles these estimates against the ``usage`` the provider returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from airflow_image_catalog.pipeline.costing.pricing.prices import PricingError

QUALITIES = ("low", "medium", "high")
FIDELITIES = ("low", "high")
FIXED_SIZES = ((1024, 1024), (1024, 1536), (1536, 1024))  # the sizes of the documented output table
FIT_SIDE = 2048  # inputs are first fitted in a 2048x2048 square ...
TILE_SIDE = 512  # ... then scaled down so the shortest side is 512, and counted in 512-px tiles
BASE_TOKENS = 65
TOKENS_PER_TILE = 129
HIGH_FIDELITY_TOKENS = {"square": 4160, "other": 6240}  # added per input image at high fidelity
# The documented output table is exactly rows x (columns + 1) of a grid of square cells whose side
# depends on the quality: 1024x1024 low = 16 x 17 = 272, medium = 32 x 33 = 1056, high = 64 x 65 =
# 4160; 1536x1024 high = 64 x 97 = 6208; 1024x1536 high = 96 x 65 = 6240 (and so on for all nine).
OUTPUT_CELL = {"low": 64, "medium": 32, "high": 16}
PARTIAL_IMAGE_TOKENS = 100
CHARS_PER_TOKEN = 4
ESTIMATE_BAND = 0.30  # relative band on token counts with no published formula (see gpt_image_2_estimate)
CALCULATOR_BAND = 0.10  # OpenAI's calculator reproduced; a bill may differ from the calculator
TEXT_BAND = 0.50  # ~4 characters per token holds for English prose; other text runs 2-6
#: gpt-image-2 output tokens: OpenAI's calculator (quality factor, pixel offset, scale)
GPT_IMAGE_2_QUALITY_FACTOR = {"low": 16, "medium": 48, "high": 96}
GPT_IMAGE_2_AREA_OFFSET = 2_000_000
GPT_IMAGE_2_AREA_SCALE = 4_000_000
#: gpt-image-2 input image tokens (a published measurement, not an OpenAI document)
PATCH_SIDE = 32
PATCH_BUDGET = 1536
CONDITIONING_SIDE = 1024
MAX_MAGNIFICATION = 2.0


def is_gpt_image_2(model: str | None) -> bool:
    """gpt-image-2 and its snapshots: always high input fidelity, any WxH, no published token formula."""
    return (model or "").startswith("gpt-image-2")


def normalize_quality(quality: str | None) -> str:
    """``low`` / ``medium`` / ``high``; ``auto`` (or unset) is estimated as ``high``.

    With ``auto`` the model picks the quality per request, and Azure documents ``high`` as the
    default: pricing it as high keeps a budget from assuming the cheaper outcome.
    """
    quality = (quality or "auto").strip().lower()
    if quality == "auto":
        return "high"
    if quality not in QUALITIES:
        raise PricingError(f"quality must be one of {', '.join(QUALITIES)} or auto, got {quality!r}")
    return quality


def parse_size(size: str | tuple[int, int] | Sequence[int]) -> tuple[int, int]:
    """``"WxH"`` or ``(width, height)`` as two positive ints (``auto`` must be resolved first)."""
    try:
        width, height = (int(v) for v in (size.lower().split("x") if isinstance(size, str) else size))
    except (TypeError, ValueError):
        raise PricingError(f"size must be 'WxH' or (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise PricingError(f"size must be positive, got {size!r}")
    return width, height


def tile_count(width: int, height: int) -> int:
    """512-px tiles of an input image: fit in 2048x2048, shortest side down to 512, count tiles.

    Both scalings only shrink (as in OpenAI's published vision examples): a small image is not
    blown up to 512 first. Exact rational arithmetic, so no side lands a hair over a tile edge.
    """
    w, h = (Fraction(v) for v in parse_size((width, height)))
    fit = min(Fraction(1), FIT_SIDE / max(w, h))
    w, h = w * fit, h * fit
    shrink = min(Fraction(1), TILE_SIDE / min(w, h))
    w, h = w * shrink, h * shrink
    return math.ceil(w / TILE_SIDE) * math.ceil(h / TILE_SIDE)


def gpt_image_2_input_tokens(width: int, height: int) -> int:
    """Input image tokens of one gpt-image-2 edit input (an estimate, see the module notes).

    The image is magnified (at most 2x) so its long side reaches 1024 px, its canvas ratio capped at
    3:1, then counted in 32-px patches; above 1,536 patches it is shrunk to fit the budget.
    """
    w, h = parse_size((width, height))
    grow = min(MAX_MAGNIFICATION, max(1.0, CONDITIONING_SIDE / max(w, h)))
    w, h = min(w * grow, 3 * h * grow), min(h * grow, 3 * w * grow)
    patches = math.ceil(w / PATCH_SIDE) * math.ceil(h / PATCH_SIDE)
    if patches > PATCH_BUDGET:
        shrink = math.sqrt(PATCH_BUDGET * PATCH_SIDE * PATCH_SIDE / (w * h))
        patches = min(PATCH_BUDGET, math.ceil(w * shrink / PATCH_SIDE) * math.ceil(h * shrink / PATCH_SIDE))
    return patches


def input_image_tokens(width: int, height: int, *, fidelity: str | None = None, model: str = "gpt-image-1.5") -> int:
    """Input tokens of one image (1024x1024 at low fidelity -> 194 for the gpt-image-1 family).

    gpt-image-1 family: low fidelity is ``65 + 129 x tiles``; high fidelity adds 4,160 for a square
    image and 6,240 otherwise. gpt-image-2 always reads inputs at high fidelity (its ``fidelity`` is
    ignored, as the API does) and is counted by :func:`gpt_image_2_input_tokens`.

    :param fidelity: ``low`` / ``high``; ``None`` is the API default (low).
    """
    if is_gpt_image_2(model):
        return gpt_image_2_input_tokens(width, height)
    fidelity = fidelity or "low"
    if fidelity not in FIDELITIES:
        raise PricingError(f"input fidelity must be low or high, got {fidelity!r}")
    tokens = BASE_TOKENS + TOKENS_PER_TILE * tile_count(width, height)
    if fidelity == "high":
        tokens += HIGH_FIDELITY_TOKENS["square" if width == height else "other"]
    return tokens


def output_tokens(size: str | tuple[int, int], quality: str | None = "medium", *, model: str | None = None) -> int:
    """Output tokens of one image of ``size``.

    gpt-image-2 (and its snapshots): OpenAI's pricing calculator, ``ceil(f x s x (2,000,000 + w x h) /
    4,000,000)`` with the quality factor ``f`` (16 / 48 / 96) and ``s = round(f x short / long)``.
    Other models (the gpt-image-1 family): the documented table for 1024x1024, 1024x1536 and
    1536x1024; other sizes are a stated estimate: the table is exactly ``rows x (columns + 1)`` cells of
    64 / 32 / 16 px (low / medium / high), and the same grid is applied to the requested size, partial
    cells rounded up. ``auto`` quality = high.
    """
    width, height = parse_size(size)
    level = normalize_quality(quality)
    if is_gpt_image_2(model):
        factor = GPT_IMAGE_2_QUALITY_FACTOR[level]
        long, short = max(width, height), min(width, height)
        short_factor = (2 * factor * short + long) // (2 * long)  # round half up
        return -(-factor * short_factor * (GPT_IMAGE_2_AREA_OFFSET + width * height) // GPT_IMAGE_2_AREA_SCALE)
    cell = OUTPUT_CELL[level]
    return math.ceil(height / cell) * (math.ceil(width / cell) + 1)


def partial_image_tokens(count: int) -> int:
    """Output tokens the streamed partial images add: 100 each (``partial_images`` 0-3)."""
    if count < 0:
        raise PricingError(f"partial_images must be >= 0, got {count}")
    return PARTIAL_IMAGE_TOKENS * count


def prompt_tokens(text: str) -> int:
    """Text tokens of a prompt: an estimate of ~4 characters per token, rounded up, at least 1.

    OpenAI does not document the image models' tokenizer; the ledger replaces this with the
    ``text_tokens`` the response reports. Costs little either way ($5 per 1M text tokens).
    """
    return max(1, math.ceil(len(text or "") / CHARS_PER_TOKEN))


@dataclass(frozen=True)
class Tokens:
    """Token counts of one request (or a sum of them), split the way prices are."""

    image_in: int = 0
    text_in: int = 0
    image_out: int = 0
    image_in_cached: int = 0
    text_in_cached: int = 0

    @property
    def input(self) -> int:
        return self.image_in + self.text_in + self.image_in_cached + self.text_in_cached

    @property
    def total(self) -> int:
        return self.input + self.image_out

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def times(self, count: int) -> Tokens:
        return Tokens(*(getattr(self, f.name) * count for f in fields(self)))

    def as_usage(self) -> dict[str, Any]:
        """The OpenAI Images ``usage`` object these counts make (what the local edit service answers)."""
        image, text = self.image_in + self.image_in_cached, self.text_in + self.text_in_cached
        return {"input_tokens": image + text, "input_tokens_details": {"image_tokens": image, "text_tokens": text},
                "output_tokens": self.image_out, "total_tokens": self.total}


@dataclass(frozen=True)
class TokenEstimate:
    """A point estimate with its low/high band and what each part rests on."""

    tokens: Tokens
    low: Tokens
    high: Tokens
    basis: tuple[str, ...] = ()


def _band(count: int, band: float) -> tuple[int, int]:
    share = Fraction(str(band))
    return math.floor(count * (1 - share)), math.ceil(count * (1 + share))


def request_tokens(
    model: str,
    input_sizes: Sequence[tuple[int, int]],
    prompt: str,
    size: str | tuple[int, int],
    quality: str | None = "auto",
    *,
    n: int = 1,
    fidelity: str | None = None,
    partial_images: int = 0,
) -> TokenEstimate:
    """Tokens of one images/edits request: every input image, the prompt, ``n`` outputs of ``size``.

    :param input_sizes: (width, height) of the image and then each reference, as uploaded.
    :param size: the request's output size, resolved (``auto`` is the caller's to resolve).
    :param partial_images: streamed partial images per output image.
    """
    if not input_sizes:
        raise PricingError("an edit request needs at least one input image")
    if n < 1:
        raise PricingError(f"n must be >= 1, got {n}")
    out_w, out_h = parse_size(size)
    level = normalize_quality(quality)
    newer = is_gpt_image_2(model)
    used_fidelity = "high" if newer else (fidelity or "low")
    image_in = sum(input_image_tokens(w, h, fidelity=used_fidelity, model=model) for w, h in input_sizes)
    image_out = (output_tokens((out_w, out_h), level, model=model) + partial_image_tokens(partial_images)) * n
    text_in = prompt_tokens(prompt)
    fixed = (out_w, out_h) in FIXED_SIZES
    in_band = ESTIMATE_BAND if newer else 0.0
    out_band = CALCULATOR_BAND if newer else (0.0 if fixed else ESTIMATE_BAND)
    (in_low, in_high), (out_low, out_high), (text_low, text_high) = (
        _band(image_in, in_band), _band(image_out, out_band), _band(text_in, TEXT_BAND))
    if newer:
        basis = [f"input image tokens: gpt-image-2 32-px patch measurement (OpenAI Developer Community), "
                 f"always high fidelity; no published formula (+/-{ESTIMATE_BAND:.0%})",
                 f"output tokens {out_w}x{out_h} {level}: OpenAI's gpt-image-2 pricing calculator "
                 f"(+/-{CALCULATOR_BAND:.0%})"]
    else:
        basis = [f"input image tokens: gpt-image-1 family tile formula, {used_fidelity} fidelity (documented)",
                 f"output tokens {out_w}x{out_h} {level}: "
                 + ("documented table" if fixed else f"documented grid extended to a custom size (+/-{ESTIMATE_BAND:.0%})")]
    basis.append(f"prompt tokens: ~{CHARS_PER_TOKEN} characters per token (+/-{TEXT_BAND:.0%})")
    if (quality or "auto") == "auto":
        basis.append("quality auto: estimated as high (the API's default quality)")
    if partial_images:
        basis.append(f"{partial_images} partial image(s) per output: +{PARTIAL_IMAGE_TOKENS} tokens each")
    return TokenEstimate(
        tokens=Tokens(image_in=image_in, text_in=text_in, image_out=image_out),
        low=Tokens(image_in=in_low, text_in=text_low, image_out=out_low),
        high=Tokens(image_in=in_high, text_in=text_high, image_out=out_high),
        basis=tuple(basis),
    )


def gpt_image_2_estimate(
    input_sizes: Sequence[tuple[int, int]],
    prompt: str,
    size: str | tuple[int, int],
    quality: str | None = "auto",
    *,
    n: int = 1,
    partial_images: int = 0,
) -> TokenEstimate:
    """gpt-image-2 tokens for one edit request: OpenAI's calculator for the output (+/-10%), the
    published patch measurement for the inputs (+/-30%: no OpenAI document gives it)."""
    return request_tokens("gpt-image-2", input_sizes, prompt, size, quality, n=n, partial_images=partial_images)
