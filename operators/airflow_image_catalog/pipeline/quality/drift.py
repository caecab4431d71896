"""How far an edit round moved the product away from the source (multi-round drift control).

Pure functions over decoded pixels; the chunk runner calls them between rounds. The product
region is the gate's own (``reframe.source_product``), never the editor's segmentation.
"""

from __future__ import annotations

import numpy as np

from airflow_image_catalog.pipeline.quality.metrics import product_drift


def product_region_of(source: np.ndarray) -> np.ndarray:
    """The source product's pixels (the whole frame when none is found)."""
    from airflow_image_catalog.pipeline.quality.reframe import source_product

    mask = source_product(source).sure
    return mask if mask.any() else np.ones(source.shape[:2], bool)


def measure_drift(source: np.ndarray, edited: np.ndarray) -> dict[str, float | int]:
    """pHash distance and SSIM of the product region, edited round vs the original source.

    Same geometry: compared on the source's product pixels (a new background does not count). A
    reframed round (other size) is compared after fitting the source product into the edit, as the
    gate does.
    """
    from airflow_image_catalog.pipeline.quality._decode import Decoded
    from airflow_image_catalog.pipeline.quality.reframe import SourceView, align, on_edit

    if source.shape[:2] == edited.shape[:2]:
        figures = product_drift(source, edited, product_region_of(source))
    else:
        view = SourceView.of(Decoded(source, None, 1, source.shape[1::-1]))
        out = Decoded(edited, None, 1, edited.shape[1::-1])
        fitted = align(view, out)
        if fitted is None:
            return {"phash_distance": 64, "product_ssim": 0.0}
        aligned, product = on_edit(view, fitted, out)
        figures = product_drift(aligned, edited, product)
    return {"phash_distance": int(figures["phash_distance"]), "product_ssim": round(float(figures["product_ssim"]), 4)}
