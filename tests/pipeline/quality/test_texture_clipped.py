"""A product clipped flat on every side and fitted to the canvas again (``reframe._texture_clipped``).

Its outline keeps its shape (a box stays a rectangle, a bottle a bottle), so the outline fit maps the
whole source onto what is left and the gate used to name the consequences (the background "not pure
white", "stretched", "colours changed"). The texture of the product's middle shows the enlargement.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench import corpus
from airflow_image_catalog.tooling.bench.quality import judge

SIDE = 1000
PRODUCTS = ("box_kraft@7", "box_tea@11", "bottle_green@7")


@pytest.fixture(scope="module")
def judged():
    products = [corpus.product(name) for name in (*PRODUCTS, "mug_yellow@7")]
    return judge([i for i in corpus.items(products, SIDE, kinds=("clipped_edges",), engine=False)
                  if i.kind != "clean" or i.name.endswith("/q92")])  # one clean variant: make bench-quality judges all


@pytest.mark.parametrize("product", PRODUCTS)
def test_clipped_on_every_side_is_incomplete(judged, product):
    bad = next(j for j in judged if j.product == product and j.kind == "clipped_edges")
    assert bad.quarantined and "completeness" in bad.categories, bad.reasons
    assert any(r.startswith("Part of the product is missing (clipped flat): its texture shows it") for r in bad.reasons), \
        bad.reasons


def test_clean_edits_keep_the_outline_scale(judged):
    """Including a plain mug, whose middle has little texture but a highlight and a handle."""
    clean = [(j.item, j.reasons) for j in judged if j.kind == "clean" and j.quarantined]
    assert not clean, clean
    assert sum(j.kind == "clean" for j in judged) == len(PRODUCTS) + 1
