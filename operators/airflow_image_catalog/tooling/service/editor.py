"""What the local edit service does with an edit request: the local engine (its usage: :mod:`.usage`).

A prompt is mapped to an engine operation: first by exact match against the shipped
recipes' step prompts (so a recipe run through the ``openai`` backend against this
service edits like the ``local`` backend), then by keywords. A ``drift`` fault
additionally rotates and hue-shifts the product (:func:`drift_product`). An emulated tier's
model (:mod:`.tiers`) damages some edits the way its stated defect rate says.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

_KEYWORDS: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("remove",), "remove_object", {}),
    (("white background", "pure white"), "white_background", {}),
    (("square", "canvas"), "fit_canvas", {"product_fill": 0.85}),
    (("recolo",), "recolor_region", {"color": "#C0392B"}),
    (("golden", "warm"), "look", {"name": "golden_hour"}),
    (("brighten",), "exposure", {"stops": 0.33}),
    (("background",), "replace_background", {"mode": "color", "color": "#DDE6EE"}),
)
#: the ``drift`` fault: the product turns by this much and its hue moves by this much (degrees)
DRIFT_DEGREES = 15.0
DRIFT_HUE_DEGREES = 60.0
#: a pixel is product when a channel differs from the fitted backdrop by more than this
DRIFT_PRODUCT_LEVELS = 24.0
#: engine results kept by request content (the engine is deterministic): the emulated tiers send the
#: same inputs to several models, which then differ only in what :mod:`.tiers` does to the result
ENGINE_MEMO_ENTRIES = 48
_memo: OrderedDict[str, Any] = OrderedDict()
_memo_lock = threading.Lock()


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@functools.cache
def _recipe_prompts() -> dict[str, tuple[str, dict[str, Any]]]:
    from airflow_image_catalog.recipes import load_recipe, shipped_recipes

    table = {}
    for name in shipped_recipes():
        for step in load_recipe(name).steps:
            table[_normal(step.prompt)] = (step.local.op, dict(step.local.params))
    return table


def choose_op(prompt: str, *, has_mask: bool, has_reference: bool) -> tuple[str, dict[str, Any]]:
    """The engine op (and params) for a prompt; ops needing a mask or reference only when given."""
    from airflow_image_catalog.imaging.engine import get_op

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
    drift: bool = False,
    model: str | None = None,
    defects: list[str] | None = None,
) -> tuple[bytes, int, int]:
    """Run the engine: ``images[0]`` is edited, the rest are references; ``mask`` is a bool array.

    ``drift`` (the fault) drifts the edited product before encoding, see :func:`drift_product`.
    ``model`` an emulated tier (:mod:`.tiers`): the tier may damage the edit; the defect kind it made
    is appended to ``defects`` (when given), so a test knows the truth the gate is judged against.
    """
    from airflow_image_catalog.imaging.engine import decode_image, encode_image

    decoded = [decode_image(data) for data in images]
    image = _engine(images, decoded, prompt, mask, size)
    if drift:
        image = drift_product(image)
    if model:
        from airflow_image_catalog.tooling.service.tiers import emulate

        image, defect = emulate(image, model, images[0], decoded[0])
        if defect and defects is not None:
            defects.append(defect)
    return encode_image(image, format=output_format, quality=quality), image.shape[1], image.shape[0]


def _engine(images: list[bytes], decoded: list[Any], prompt: str, mask: Any, size: str | None) -> Any:
    """The engine's edit at the requested size, memoised by the request's content (a copy is returned)."""
    from airflow_image_catalog.imaging.engine import apply_op

    key = hashlib.sha256("|".join([*(hashlib.sha256(data).hexdigest() for data in images), prompt, str(size),
                                   f"{mask.shape}:{hashlib.sha256(mask.tobytes()).hexdigest()}" if mask is not None else "-"])
                         .encode()).hexdigest()
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key].copy()
    op, params = choose_op(prompt, has_mask=mask is not None, has_reference=len(decoded) > 1)
    image = apply_op(op, decoded[0], params, mask=mask if op != "fit_canvas" else None, references=decoded[1:])
    wanted = parse_size(size)
    if wanted and image.shape[:2] != (wanted[1], wanted[0]):
        image = apply_op("fit_canvas", image, {"width": wanted[0], "height": wanted[1], "product_fill": 0})
    with _memo_lock:
        _memo[key] = image.copy()
        while len(_memo) > ENGINE_MEMO_ENTRIES:
            _memo.popitem(last=False)
    return image


def drift_product(image: Any, degrees: float = DRIFT_DEGREES, hue_degrees: float = DRIFT_HUE_DEGREES) -> Any:
    """The product rotated about its centre and hue-shifted, on the unchanged backdrop, same size.

    What a generative model's identity drift looks like to a quality gate: the product's
    perceptual hash and SSIM change while size, framing and backdrop stay plausible. The
    backdrop is the engine's smooth polynomial model fitted to the border, so gradients and
    vignettes survive where the product used to be. No product found: only the hue shifts.
    """
    import cv2
    import numpy as np

    from airflow_image_catalog.imaging.engine._common import bbox
    from airflow_image_catalog.imaging.engine.subject import border_band, fit_background

    h, w = image.shape[:2]
    backdrop = fit_background(image, border_band(h, w))
    product = (np.abs(image.astype(np.float32) - backdrop).max(axis=-1) > DRIFT_PRODUCT_LEVELS).astype(np.uint8)
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(hue_degrees / 2)) % 180  # OpenCV hue is 0..179
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    box = bbox(product.view(bool))
    if box is None:
        return shifted
    y0, y1, x0, x1 = box
    turn = cv2.getRotationMatrix2D(((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2), degrees, 1.0)
    moved = cv2.warpAffine(shifted, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(product.astype(np.float32), turn, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    plain = np.where(product[..., None].astype(bool), backdrop, image.astype(np.float32))
    return np.clip(alpha * moved + (1 - alpha) * plain + 0.5, 0, 255).astype(np.uint8)
