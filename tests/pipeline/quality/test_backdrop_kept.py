"""A cut that went wide keeps a band of the old backdrop around the product (``reframe._backdrop_kept``).

The fit then scales the source to product and band together, and the checks that follow read the
consequences: a teal ball "clipped flat", an amber bottle's "colours changed", a silver can's "new
marks". The band's colours name the cause without the fit: they are the source backdrop's.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench import corpus
from airflow_image_catalog.tooling.bench.quality import judge

SIDE = 1000
PRODUCTS = ("ball_teal@7", "can_silver@11", "bottle_amber@7", "coin_1")


@pytest.fixture(scope="module")
def judged():
    products = [corpus.product(name) for name in PRODUCTS]
    return judge([i for i in corpus.items(products, SIDE, kinds=("backdrop_left",), engine=False)
                  if i.kind != "clean" or i.name.endswith("/q92")])  # one clean variant: make bench-quality judges all


@pytest.mark.parametrize("product", PRODUCTS)
def test_a_kept_backdrop_band_is_named_as_such(judged, product):
    bad = next(j for j in judged if j.product == product and j.kind == "backdrop_left")
    assert bad.quarantined and "background" in bad.categories, bad.reasons
    assert any(r.startswith("The old backdrop was kept around the product") and "% of its outline" in r
               for r in bad.reasons), bad.reasons


def test_clean_edits_show_no_backdrop(judged):
    clean = [(j.item, j.reasons) for j in judged if j.kind == "clean" and j.quarantined]
    assert not clean, clean
    assert sum(j.kind == "clean" for j in judged) == len(PRODUCTS)


def test_a_cut_out_has_no_backdrop_to_keep():
    """A transparent shot's grey fringe is judged by the halo checks; the colour check has nothing to compare."""
    from airflow_image_catalog.pipeline.quality.reframe import align, decode_pair, measure_reframe

    p = corpus.product("logo_transparent")
    item = next(corpus.items([p], SIDE, kinds=("backdrop_left",), engine=False))
    view, edited = decode_pair(p.source_bytes(), item.edited_bytes)
    assert align(view, edited) is not None
    row = measure_reframe(view, edited)
    assert row["backdrop_kept"] is None and row["backdrop_kept_colour"] == ""
