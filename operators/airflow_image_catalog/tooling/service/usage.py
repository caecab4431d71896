"""The ``usage`` the local edit service reports for an edit: its own table, apart from our estimator.

The cost check estimates (``airflow_image_catalog.pipeline.costing.pricing``) and the ledger reconciles
those estimates against the usage a provider reports. If this service computed usage with the
estimator, reconciling against it could never find an error, so it keeps its own figures, each from
its source:

- output tokens, gpt-image-1.5 / gpt-image-1-mini: OpenAI's image-generation guide table for the GPT
  image models (1024x1024 272 / 1056 / 4160, 1024x1536 408 / 1584 / 6240, 1536x1024 400 / 1568 / 6208
  for low / medium / high);
- output tokens, gpt-image-2: OpenAI's pricing calculator, whose standard sizes are listed here as
  the calculator shows them (1024x1024 high 7024 and 1536x1024 high 5488, as quoted in the OpenAI
  Developer Community's "ChatGPT Images 2.0" launch thread), and whose algorithm for other sizes was
  published in the Developer Community thread "gpt-image-2 output pricing calculator" (quality factor
  16 / 48 / 96, short-axis factor, 2,000,000-pixel offset, 4,000,000 scale);
- ``quality: auto`` is billed as ``high`` (Azure's image how-to: "The default value is high");
  ``size: auto`` is billed as the standard size nearest the first image's aspect ratio;
- input image tokens, gpt-image-1.5 / -mini: the 512-px tile count of OpenAI's vision guide (fit in
  2048x2048, shortest side 512), 65 + 129 per tile, plus 4,160 (square) / 6,240 at high fidelity;
- input image tokens, gpt-image-2 (always high fidelity): 32-px patches of the image magnified (at
  most 2x) towards a 1024-px long side, its canvas ratio capped at 3:1, a 1,536-patch budget (the
  Developer Community thread "OpenAI must document the input image pricing of gpt-image-2");
- text tokens: about 0.75 words per token (OpenAI's tokenizer help page rule of thumb).
"""

from __future__ import annotations

import math
from typing import Any

GPT_IMAGE_OUTPUT = {  # (width, height) -> (low, medium, high)
    (1024, 1024): (272, 1056, 4160),
    (1024, 1536): (408, 1584, 6240),
    (1536, 1024): (400, 1568, 6208),
}
GPT_IMAGE_2_OUTPUT = {
    (1024, 1024): (196, 1756, 7024),
    (1024, 1536): (158, 1372, 5488),
    (1536, 1024): (158, 1372, 5488),
}
LEVELS = ("low", "medium", "high")
QUALITY_FACTOR = {"low": 16, "medium": 48, "high": 96}


def billed_quality(quality: str) -> str:
    return "high" if quality == "auto" else quality


def billed_size(size: str, first: tuple[int, int]) -> tuple[int, int]:
    if size and size != "auto":
        width, height = size.split("x")
        return int(width), int(height)
    ratio = first[0] / first[1]
    return (1024, 1024) if 0.8 <= ratio <= 1.25 else ((1536, 1024) if ratio > 1 else (1024, 1536))


def gpt_image_2_output(width: int, height: int, quality: str) -> int:
    """OpenAI's calculator for gpt-image-2 output tokens (the Developer Community's published algorithm)."""
    if (width, height) in GPT_IMAGE_2_OUTPUT:
        return GPT_IMAGE_2_OUTPUT[(width, height)][LEVELS.index(quality)]
    factor = QUALITY_FACTOR[quality]
    long, short = max(width, height), min(width, height)
    short_factor = (2 * factor * short + long) // (2 * long)
    return (factor * short_factor * (2_000_000 + width * height) + 4_000_000 - 1) // 4_000_000


def output_tokens(family: str, size: tuple[int, int], quality: str) -> int:
    if family == "gpt-image-2":
        return gpt_image_2_output(*size, quality)
    if size in GPT_IMAGE_OUTPUT:
        return GPT_IMAGE_OUTPUT[size][LEVELS.index(quality)]
    raise ValueError(f"{family} has no output size {size}")


def tiles(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 512 / min(width, height))
    return math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


def gpt_image_input(size: tuple[int, int], fidelity: str) -> int:
    width, height = size
    tokens = 65 + 129 * tiles(width, height)
    if fidelity == "high":
        tokens += 4160 if width == height else 6240
    return tokens


def gpt_image_2_input(size: tuple[int, int]) -> int:
    width, height = size
    grow = min(2.0, max(1.0, 1024 / max(width, height)))
    width, height = width * grow, height * grow
    if width > 3 * height:
        width = 3 * height
    elif height > 3 * width:
        height = 3 * width
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches > 1536:
        shrink = math.sqrt(1536 * 32 * 32 / (width * height))
        width, height = width * shrink, height * shrink
        patches = min(1536, math.ceil(width / 32) * math.ceil(height / 32))
    return patches


def text_tokens(prompt: str) -> int:
    return max(1, math.ceil(len(prompt.split()) / 0.75))


def edit_usage(family: str, input_sizes: list[tuple[int, int]], prompt: str, size: str, quality: str,
               fidelity: str | None, n: int) -> dict[str, Any]:
    """The ``usage`` object of one images/edits answer."""
    level = billed_quality(quality)
    out = output_tokens(family, billed_size(size, input_sizes[0]), level) * n
    if family == "gpt-image-2":
        image = sum(gpt_image_2_input(s) for s in input_sizes)
    else:
        image = sum(gpt_image_input(s, fidelity or "low") for s in input_sizes)
    text = text_tokens(prompt)
    return {"input_tokens": image + text, "input_tokens_details": {"image_tokens": image, "text_tokens": text},
            "output_tokens": out, "total_tokens": image + text + out}
