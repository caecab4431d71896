"""The local edit engine as a backend: no network, no weights, no cost.

Runs each recipe step's ``local`` operation on decoded pixels and encodes once at
the end, so multi-step recipes lose no quality between steps. A transparent source
(a cut-out PNG or WebP) is decoded with its alpha, which every op then takes as the
product's exact mask; the output keeps it or is flattened on white as the recipe's
``output.background`` says.
"""

from __future__ import annotations

import time

import numpy as np

from airflow_image_catalog import __version__
from airflow_image_catalog.backends.base import Capabilities, EditError, EditResult, ImageContext
from airflow_image_catalog.backends.imaging import encode_output
from airflow_image_catalog.recipes import Recipe, RecipeStep

MAX_PIXELS = 60_000_000
#: ops whose mask argument is the subject to keep, while a recipe's mask is always "edit here"
SUBJECT_MASK_OPS = frozenset({"white_background", "replace_background"})


class LocalEngineBackend:
    name = "local"
    model = f"local-engine/{__version__}"
    # free, and runs each step's operation, not its prompt
    capabilities = Capabilities(paid=False, prompt_driven=False)
    IDENTITY_FIELDS: tuple[str, ...] = ()

    def __init__(self, *, max_pixels: int = MAX_PIXELS):
        self.max_pixels = max_pixels

    def _mask(self, step: RecipeStep, image: np.ndarray, context: ImageContext) -> np.ndarray | None:
        from airflow_image_catalog.imaging.engine import decode_image, find_subject

        if step.mask is None:
            return None
        if step.mask in ("subject", "background") and step.local.op in SUBJECT_MASK_OPS:
            return None  # the op finds the same subject itself, with its soft edge (a binary mask has none)
        if step.mask in ("subject", "background"):
            subject = find_subject(image)
            return subject if step.mask == "subject" else ~subject
        mask_image = decode_image(context.read(step.mask), max_pixels=self.max_pixels)
        if mask_image.shape[:2] != image.shape[:2]:
            got = f"{mask_image.shape[1]}x{mask_image.shape[0]}"
            want = f"{image.shape[1]}x{image.shape[0]}"
            raise EditError(f"step {step.id}: mask {context.resolve(step.mask)} is {got}, image is {want}")
        return mask_image.mean(axis=2) > 127  # white (or transparent) = edit here

    def edit(self, source: bytes, recipe: Recipe, context: ImageContext) -> EditResult:
        from airflow_image_catalog.imaging.engine import apply_op, cut_out, decode_image

        image = decode_image(source, max_pixels=self.max_pixels, keep_alpha=True)
        output = recipe.step_output(recipe.steps[-1])
        if output.background == "transparent":
            image = cut_out(image)  # a photo is segmented once, up front; every step then keeps the cut-out
        steps = []
        for step in recipe.steps:
            started = time.perf_counter()
            mask = self._mask(step, image, context)
            if mask is not None and step.local.op in SUBJECT_MASK_OPS:
                mask = ~mask
            references = [decode_image(ref, max_pixels=self.max_pixels, keep_alpha=True)
                          for ref in context.references(step)]
            image = apply_op(step.local.op, image, step.local.params, mask=mask, references=references)
            steps.append({"id": step.id, "op": step.local.op, "seconds": round(time.perf_counter() - started, 4)})
        data = encode_output(image, output)
        width, height = (int(v) for v in output.size.split("x")) if output.size else image.shape[1::-1]
        usage = [{"step": step.id, "images": 1, "cost_usd": 0.0} for step in recipe.steps]
        return EditResult(data, output.format, width, height, usage=usage, steps=steps)
