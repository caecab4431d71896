"""How far an edit round moved the product away from the source (multi-round drift control).

Pure functions over decoded pixels; the chunk runner calls them between rounds.
"""

from __future__ import annotations

import numpy as np

from airflow_image_catalog.pipeline.quality._align import align_reframed, source_product_mask
from airflow_image_catalog.pipeline.quality.metrics import product_drift


def product_region_of(source: np.ndarray) -> np.ndarray:
    """The source product's pixels (the whole frame when none is found)."""
    mask = source_product_mask(source)
    return np.ones(source.shape[:2], bool) if mask is None else mask


def measure_drift(source: np.ndarray, edited: np.ndarray) -> dict[str, float | int]:
    """pHash distance and SSIM of the product region, edited round vs the original source.

    Same geometry: compared on the source's product pixels (a new background does not count). A reframed round (other size)
    is compared after mapping the source product into the edited product box, as the gate does.
    """
    if source.shape[:2] == edited.shape[:2]:
        figures = product_drift(source, edited, product_region_of(source))
    else:
        aligned = align_reframed(source, edited)
        figures = product_drift(aligned.source_aligned, edited, aligned.product_region)
    return {"phash_distance": int(figures["phash_distance"]), "product_ssim": round(float(figures["product_ssim"]), 4)}
