"""The gate on the local engine's own right edits of real photos (the engine's gallery, tooling/gallery.py).

Each of these once falsely quarantined a right edit (engine mask IoU >= 0.98 against the
gallery's truth): the gift box cut-out's painted drop shadow taken for an off-white canvas, the
matplotlib logo's thin letters scoring a 73 % outline, the black horse silhouette's "flattened
contrast" from its outline pixels; and the small cut-out decoded at 1/8 crashed the blockiness
check. ``make bench-quality`` gates the whole gallery and prints it.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench.quality import gate_rows

RIGHT_EDITS = ("present_cutout", "present_cutout_large", "logo_cutout", "horse", "present_on_warm")


@pytest.fixture(scope="module")
def engine_edits():
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.backends.local import LocalEngineBackend
    from airflow_image_catalog.recipes import load_recipe
    from airflow_image_catalog.tooling.gallery import gallery

    backend, recipe = LocalEngineBackend(), load_recipe("marketplace_white_square")
    items = {item.name: item for item in gallery() if item.name in RIGHT_EDITS}
    return [(name, items[name].data, backend.edit(items[name].data, recipe,
                                                  ImageContext(name, "/nonexistent", recipe.recipe_dir)).data)
            for name in RIGHT_EDITS]


def test_right_engine_edits_of_real_photos_pass(engine_edits):
    verdicts = {name: [f["reason"] for f in failed] for name, failed, _ in gate_rows(engine_edits)}
    assert set(verdicts) == set(RIGHT_EDITS)
    assert not any(verdicts.values()), {name: reasons for name, reasons in verdicts.items() if reasons}


def test_a_part_lost_from_a_real_cut_out_is_quarantined_as_incomplete(engine_edits):
    import numpy as np

    from airflow_image_catalog.imaging.engine import decode_image, encode_image

    name, source, edited = engine_edits[RIGHT_EDITS.index("present_cutout_large")]
    image = decode_image(edited).copy()
    ys, xs = np.nonzero((image < 250).any(axis=-1))
    top = ys.min()  # the ribbon's bow: its top tenth painted out with the canvas
    image[top : top + (ys.max() - top) // 10, xs.min() : xs.max() + 1] = 255
    damaged = encode_image(image, format="jpeg", quality=92)
    [(_, failed, _)] = list(gate_rows([(name, source, damaged)]))
    assert any(f["category"] == "completeness" for f in failed), [f["reason"] for f in failed]
