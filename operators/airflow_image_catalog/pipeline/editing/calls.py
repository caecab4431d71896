"""The *call* stage of the inline path: a whole recipe on one image, with idempotency keys.

Every paid request carries an idempotency key derived from the image's cache key, so a rerun's
replay of a call that was billed returns the provider's stored answer instead of paying again.
Recipes with drift control run round by round (see :class:`~airflow_image_catalog.recipes.DriftControl`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airflow_image_catalog.backends.base import EditBackend, EditError, EditResult, ImageContext, is_async
from airflow_image_catalog.recipes import Recipe

log = logging.getLogger(__name__)


def idempotency_base(key: str, lost_jobs: int = 0) -> str:
    """The idempotency scope of an image's calls: its cache key, plus a generation per dead provider job."""
    return key[:32] if not lost_jobs else f"{key[:32]}-j{lost_jobs}"


async def call(backend: EditBackend, image: bytes, recipe: Recipe, context: ImageContext, scope: str) -> EditResult:
    """One backend call for ``recipe`` on ``image``; its paid requests are keyed under ``scope``, and the
    attempts that may have been billed without an answer go with the result (or the error)."""
    from airflow_image_catalog.backends.http import idempotency_scope

    with idempotency_scope(scope) as paid:
        try:
            if is_async(backend):
                result = await backend.aedit(image, recipe, context)
            else:
                result = await asyncio.to_thread(backend.edit, image, recipe, context)
        except EditError as exc:
            exc.possibly_billed = [*exc.possibly_billed, *paid.possibly_billed]
            raise
    result.possibly_billed = [*result.possibly_billed, *paid.possibly_billed]
    return result


async def run_recipe(backend: EditBackend, upload: bytes, recipe: Recipe, context: ImageContext, key: str,
                     lost_jobs: int = 0) -> EditResult:
    """The whole recipe on ``upload``; with drift control, round by round.

    ``lost_jobs`` (dead provider jobs of earlier tries) moves the idempotency scope on: see
    :func:`idempotency_base`.
    """
    base = idempotency_base(key, lost_jobs)
    if recipe.drift is None or len(recipe.steps) == 1:
        return await call(backend, upload, recipe, context, base)
    from airflow_image_catalog.imaging.engine import decode_image
    from airflow_image_catalog.pipeline.quality.drift import measure_drift

    source = await asyncio.to_thread(decode_image, upload)
    prompt_driven = backend.capabilities.prompt_driven
    image, usage, steps, rounds, attempts, regenerations = upload, [], [], [], 0, 0
    possibly_billed: list[dict[str, Any]] = []
    result: EditResult | None = None
    for index, step in enumerate(recipe.steps):
        result = await call(backend, image, recipe.round(index), context, f"{base}-r{index}")
        figures = await asyncio.to_thread(measure_drift, source, await asyncio.to_thread(decode_image, result.data))
        entry: dict[str, Any] = {"round": index + 1, "step": step.id, **figures, "decision": "continue"}
        spent = [result]
        if recipe.drift.exceeded(figures):
            if regenerations < recipe.drift.max_regenerations:
                regenerations += 1
                regeneration = recipe.regeneration(index, prompt_driven=prompt_driven)
                result = await call(backend, upload, regeneration, context, f"{base}-g{index}")
                after = await asyncio.to_thread(measure_drift, source,
                                                await asyncio.to_thread(decode_image, result.data))
                entry.update(decision="regenerated_from_source", regenerated=after,
                             instruction=regeneration.steps[0].prompt if prompt_driven else
                             [s.id for s in regeneration.steps])
                spent.append(result)
            else:
                entry["decision"] = "over_threshold_kept"
        log.info("%s round %d (%s): phash %d, ssim %.3f: %s", context.image_id, index + 1, step.id,
                 figures["phash_distance"], figures["product_ssim"], entry["decision"])
        for paid in spent:
            usage += paid.usage
            steps += paid.steps
            attempts += paid.attempts
            possibly_billed += paid.possibly_billed
        rounds.append(entry)
        image = result.data
    assert result is not None
    return EditResult(result.data, result.format, result.width, result.height, usage=usage, steps=steps,
                      attempts=attempts, rounds=rounds, possibly_billed=possibly_billed)
