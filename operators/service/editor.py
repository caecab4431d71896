"""What the local edit service does with an edit request: the local engine, plus realistic usage.

A prompt is mapped to an engine operation: first by exact match against the shipped
recipes' step prompts (so a recipe run through the ``openai`` backend against this
service edits like the ``local`` backend), then by keywords.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

OUTPUT_TOKENS = {  # gpt-image-1 family, per quality (DESIGN.md "Tokens and prices")
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
    "1536x1024": {"low": 400, "medium": 1568, "high": 6208},
}
_KEYWORDS: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("remove",), "remove_object", {}),
    (("white background", "pure white"), "white_background", {}),
    (("square", "canvas"), "fit_canvas", {"product_fill": 0.85}),
    (("recolo",), "recolor_region", {"color": "#C0392B"}),
    (("golden", "warm"), "look", {"name": "golden_hour"}),
    (("brighten",), "exposure", {"stops": 0.33}),
    (("background",), "replace_background", {"mode": "color", "color": "#DDE6EE"}),
)


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@functools.cache
def _recipe_prompts() -> dict[str, tuple[str, dict[str, Any]]]:
    from operators.recipes import load_recipe, shipped_recipes

    table = {}
    for name in shipped_recipes():
        for step in load_recipe(name).steps:
            table[_normal(step.prompt)] = (step.local.op, dict(step.local.params))
    return table


def choose_op(prompt: str, *, has_mask: bool, has_reference: bool) -> tuple[str, dict[str, Any]]:
    """The engine op (and params) for a prompt; ops needing a mask or reference only when given."""
    from operators.engine import get_op

    text = _normal(prompt)
    candidates = [_recipe_prompts()[text]] if text in _recipe_prompts() else []
    candidates += [(op, params) for words, op, params in _KEYWORDS if any(w in text for w in words)]
    for op, params in candidates:
        spec = get_op(op)
        if (has_mask or not spec.needs_mask) and (has_reference or not spec.needs_reference):
            return op, params
    return "white_balance", {"strength": 0.5}


def parse_size(size: str | None) -> tuple[int, int] | None:
    if not size or size == "auto":
        return None
    width, height = (int(v) for v in size.lower().split("x"))
    return width, height


def edit_pixels(
    images: list[bytes],
    prompt: str,
    *,
    mask: Any = None,
    size: str | None = None,
    output_format: str = "png",
    quality: int = 92,
) -> tuple[bytes, int, int]:
    """Run the engine: ``images[0]`` is edited, the rest are references; ``mask`` is a bool array."""
    from operators.engine import apply_op, decode_image, encode_image

    decoded = [decode_image(data) for data in images]
    op, params = choose_op(prompt, has_mask=mask is not None, has_reference=len(decoded) > 1)
    image = apply_op(op, decoded[0], params, mask=mask if op != "fit_canvas" else None, references=decoded[1:])
    wanted = parse_size(size)
    if wanted and image.shape[:2] != (wanted[1], wanted[0]):
        image = apply_op("fit_canvas", image, {"width": wanted[0], "height": wanted[1], "product_fill": 0})
    return encode_image(image, format=output_format, quality=quality), image.shape[1], image.shape[0]


def image_tokens(width: int, height: int, *, high_fidelity: bool) -> int:
    """gpt-image-1 input image tokens: fit in 2048, shortest side to 512, 512-px tiles."""
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = 512 / min(width, height)
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    tokens = 65 + 129 * tiles
    if high_fidelity:
        tokens += 4160 if width == height else 6240
    return tokens


def output_tokens(width: int, height: int, quality: str) -> int:
    quality = quality if quality in ("low", "medium", "high") else "medium"
    key = f"{width}x{height}"
    if key in OUTPUT_TOKENS:
        return OUTPUT_TOKENS[key][quality]
    return round(OUTPUT_TOKENS["1024x1024"][quality] * width * height / (1024 * 1024))


def usage(input_sizes: list[tuple[int, int]], prompt: str, output: tuple[int, int], *, quality: str,
          high_fidelity: bool, n: int = 1) -> dict[str, Any]:
    image = sum(image_tokens(w, h, high_fidelity=high_fidelity) for w, h in input_sizes)
    text = max(1, len(prompt) // 4)
    out = output_tokens(*output, quality) * n
    return {
        "input_tokens": image + text,
        "input_tokens_details": {"image_tokens": image, "text_tokens": text},
        "output_tokens": out,
        "total_tokens": image + text + out,
    }
