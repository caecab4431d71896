"""The gate on the local engine's own right edits of real photos (the engine's gallery, tooling/gallery.py).

Each of these once falsely quarantined a right edit (engine mask IoU >= 0.98 against the
gallery's truth): the gift box cut-out's painted drop shadow taken for an off-white canvas, the
matplotlib logo's thin letters scoring a 73 % outline, the black horse silhouette's "flattened
contrast" from its outline pixels, the gift box on white whose silver ribbon (kept by the engine,
taken for the backdrop's shadow by the gate) read as an off-white canvas and a mark beside the
product; and the small cut-out decoded at 1/8 crashed the blockiness check. The engine failures
the issue cites are made from these right edits: the transparent gift box with its ribbon cut
away (the box split in three), the box touching all four edges clipped flat on every side, the
logo without its i's dot. ``make bench-quality`` gates the whole gallery and prints it.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench.quality import gate_rows

RIGHT_EDITS = ("present_cutout", "present_cutout_large", "logo_cutout", "horse", "present_on_warm", "present_on_white",
               "present_cutout_touching_4")


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


def _damaged(engine_edits, name, damage):
    """The engine's right edit of ``name`` with ``damage`` (image -> image) done to it, gated: its failures."""
    from airflow_image_catalog.imaging.engine import decode_image, encode_image

    _, source, edited = engine_edits[RIGHT_EDITS.index(name)]
    damaged = encode_image(damage(decode_image(edited).copy()), format="jpeg", quality=92)
    [(_, failed, _)] = list(gate_rows([(name, source, damaged)]))
    return failed


def _completeness(failed) -> bool:
    return any(f["category"] == "completeness" and f["reason"].startswith("Part of the product is missing")
               for f in failed)


def test_a_transparent_shot_with_its_ribbon_cut_away_is_quarantined_as_incomplete(engine_edits):
    """The issue's case: the white ribbon of a transparent gift box cut away, the box split in three."""
    import cv2
    import numpy as np

    def cut_ribbon(image):
        rgb = image.astype(np.int16)
        product = (rgb < 250).any(axis=-1)
        ribbon = product & (rgb.max(axis=-1) - rgb.min(axis=-1) < 30) & (rgb.mean(axis=-1) > 90)  # silver, not blue
        image[ribbon] = 255
        n, _, stats, _ = cv2.connectedComponentsWithStats((product & ~ribbon).view(np.uint8))
        assert np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] > 0.05 * np.count_nonzero(product)) >= 2  # split
        return image

    failed = _damaged(engine_edits, "present_cutout_large", cut_ribbon)
    assert _completeness(failed), [f["reason"] for f in failed]


def test_a_product_touching_the_frame_clipped_flat_is_quarantined_as_incomplete(engine_edits):
    """The issue's case: a cut-out touching all four edges of its frame comes back shaved flat on every side."""
    import numpy as np

    def clip_flat(image):
        ys, xs = np.nonzero((image < 250).any(axis=-1))
        k = int(0.05 * max(np.ptp(ys), np.ptp(xs)))
        image[: ys.min() + k] = image[ys.max() - k :] = 255
        image[:, : xs.min() + k] = image[:, xs.max() - k :] = 255
        return image

    failed = _damaged(engine_edits, "present_cutout_touching_4", clip_flat)
    assert _completeness(failed), [f["reason"] for f in failed]
    assert any("clipped flat" in f["reason"] for f in failed), [f["reason"] for f in failed]


def test_a_letter_losing_its_dot_is_quarantined_as_incomplete(engine_edits):
    """The issue's case: the matplotlib logo's i without its dot (the smallest piece of the lettering above the line)."""
    import cv2
    import numpy as np

    def drop_dot(image):
        ink = (image < 200).any(axis=-1)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.view(np.uint8))
        letters = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] > 0.005 * np.count_nonzero(ink)]
        dot = min(letters, key=lambda i: stats[i, cv2.CC_STAT_AREA])  # the i's dot: the smallest glyph piece
        assert stats[dot, cv2.CC_STAT_WIDTH] < 2 * stats[dot, cv2.CC_STAT_HEIGHT] < 4 * stats[dot, cv2.CC_STAT_WIDTH]
        image[cv2.dilate((labels == dot).view(np.uint8), np.ones((7, 7), np.uint8)).view(bool)] = 255
        return image

    failed = _damaged(engine_edits, "logo_cutout", drop_dot)
    assert _completeness(failed), [f["reason"] for f in failed]
