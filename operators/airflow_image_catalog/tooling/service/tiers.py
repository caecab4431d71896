"""EMULATED model tiers: the local edit service answering as cheaper and dearer models that fail more or less.

This is emulation, for tests and the demo, not a measurement of any real model: the local engine
makes every edit, and a tier then damages some of its outputs with the quality gate's own defect
makers (``tooling/bench/corpus.py``: the ways an editor really fails, e.g. a grey canvas, a frame,
an overlaid badge, a part missing). Which requests are damaged is decided by a hash of the
request's input image and the tier, never by chance: the same image sent to the same tier is
damaged the same way every time, so a canary's sample and a brute-force run over every image
agree image by image. Real quality differences come only from real backends.

The stated figures, per edit *request* (a recipe of k steps makes k requests, so up to k draws):

=====================  ========================  ==============================================
model                  defect rate easy / hard   price (prices.yaml ``openai``, per 1M tokens)
=====================  ========================  ==============================================
``emulated-lite``     4 % / 60 %                text in $2, image in $2.50, image out $8
``emulated-standard`` 1 % / 3 %                 text in $4, image in $8, image out $24
``emulated-pro``      0.5 % / 1 %               text in $5, image in $16, image out $64
=====================  ========================  ==============================================

At ``quality: medium`` a 1024x1024 request costs about $0.009 (lite), $0.027 (standard) and $0.071
(pro): the ladder of gpt-image-1-mini, gpt-image-1.5 and gpt-image-2 in spirit, not in figures.

"Hard" is the request's input as :mod:`airflow_image_catalog.pipeline.routing.features` reads it:
text present or a busy backdrop (the review that started the project: product shots on plain
backdrops succeed far more often than text, logos and complex scenes). The tiers speak the
OpenAI images/edits contract (fixed sizes, ``input_fidelity`` high/low), so they are billed in
tokens by the service's usage table and priced by the normal price table, cost check and ledger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

#: the defect kinds a tier makes: each one the gate's ``amazon_main`` profile quarantines on the
#: engine's marketplace edits (tests/tooling/service/test_tiers.py measures it), all from the corpus
DEFECT_KINDS = ("grey_canvas", "frame", "canvas_text", "badge", "watermark", "part_missing", "cut_by_canvas",
                "duplicated", "stretched", "recoloured")
#: a product pixel differs from the fitted backdrop by more than this (levels, max channel)
PRODUCT_LEVELS = 24.0


@dataclass(frozen=True)
class Tier:
    """One emulated model: its defect rate per request on easy and on hard inputs (see the module table)."""

    model: str
    easy_defect_rate: float
    hard_defect_rate: float
    note: str = ""

    def defect_rate(self, hard: bool) -> float:
        return self.hard_defect_rate if hard else self.easy_defect_rate


TIERS: dict[str, Tier] = {tier.model: tier for tier in (
    Tier("emulated-lite", 0.04, 0.60, "cheapest; good on plain product shots, fails most text and busy scenes"),
    Tier("emulated-standard", 0.01, 0.03, "mid price; rarely fails"),
    Tier("emulated-pro", 0.005, 0.01, "dearest; almost never fails"),
)}


def tier_for(model: str) -> Tier | None:
    """The emulated tier a model name names (``None``: a real model's name)."""
    return TIERS.get(model)


def _draw(image: bytes, model: str, purpose: str) -> float:
    """A number in [0, 1) fixed by the input image's SHA-256, the tier and what it is for."""
    digest = hashlib.sha256(hashlib.sha256(image).digest() + f"|{model}|{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def is_hard(image: Any) -> bool:
    """Whether a decoded input counts as hard for the tiers: text present or a busy backdrop."""
    from airflow_image_catalog.pipeline.routing.features import features_of

    features = features_of(image)
    return features.text or features.backdrop == "busy"


def defect_for(tier: Tier, image: bytes, hard: bool) -> str | None:
    """The defect kind this tier makes of this input image (``None``: the edit is left clean)."""
    if _draw(image, tier.model, "defect") >= tier.defect_rate(hard):
        return None
    return DEFECT_KINDS[int(_draw(image, tier.model, "kind") * len(DEFECT_KINDS))]


def damage(edited: Any, kind: str, image: bytes, model: str) -> Any:
    """The engine's edit with the corpus's ``kind`` of damage: the product is read off the edit (what
    differs from its fitted backdrop), then the corpus composes the damaged canvas; same size as the edit."""
    import cv2
    import numpy as np

    from airflow_image_catalog.imaging.engine.subject import border_band, fit_background
    from airflow_image_catalog.tooling.bench import corpus

    h, w = edited.shape[:2]
    backdrop = fit_background(edited, border_band(h, w))
    solid = (np.abs(edited.astype(np.float32) - backdrop).max(axis=-1) > PRODUCT_LEVELS).astype(np.uint8)
    solid = cv2.morphologyEx(solid, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    if not solid.any():
        return edited
    alpha = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), 0.7)
    product = corpus.Product(f"emulated/{model}", "emulated", np.ascontiguousarray(edited), alpha, "png")
    rng = np.random.default_rng(int(_draw(image, model, "damage") * 2 ** 63))
    side = max(h, w)
    made = corpus.KINDS[kind][1](product, corpus.cutout(product), side, rng)
    if made is None:
        return edited
    if (h, w) == (side, side):
        return made
    fitted = np.full_like(edited, 255)  # a non-square edit gets the damaged square canvas fitted in, centred
    scale = min(w, h) / side
    small = cv2.resize(made, (round(side * scale), round(side * scale)), interpolation=cv2.INTER_AREA)
    y0, x0 = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    fitted[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return fitted


def emulate(edited: Any, model: str, image: bytes, source: Any) -> tuple[Any, str | None]:
    """What tier ``model`` returns for an input (``image`` its bytes, ``source`` decoded) that the engine
    edited to ``edited``: the edit, damaged or not, and the defect kind (``None``: clean or not a tier)."""
    tier = tier_for(model)
    if tier is None:
        return edited, None
    kind = defect_for(tier, image, is_hard(source))
    return (edited, None) if kind is None else (damage(edited, kind, image, model), kind)
