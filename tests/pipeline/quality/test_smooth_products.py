"""Faults the gate used to miss or misname on products with little inside them to measure.

A smooth product (scikit-image's colour wheel) blurred or upscaled has no texture for the detail tiles
and no inner edges for the edge-width check: only its outline fades (``reframe._outline_softness``).
Posterised tones saved as JPEG keep nearly every grey level present, so a count of levels missed them;
the entropy of the levels does not (``reframe._levels``). A brushed silver can stretched sideways gave
the fit's ECC refinement nothing to pull it by (its texture runs along the stretch), so the gate named the
consequence, "part of the product is missing"; ECC now also starts from the box on the box.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench import corpus
from airflow_image_catalog.tooling.bench.quality import judge

SIDE = 1000


@pytest.fixture(scope="module")
def judged():
    items = []
    for name, kinds in (("colorwheel", ("blurred", "resolution_loss", "posterized")), ("coin_1", ("posterized",)),
                        ("can_silver@7", ("stretched", "clipped_edges", "grey_canvas"))):
        items += [i for i in corpus.items([corpus.product(name)], SIDE, kinds=kinds, engine=False)
                  if i.kind != "clean" or i.name.endswith("/q92")]  # one clean variant: make bench-quality judges all
    return {(j.product, j.kind): j for j in judge(items)}


@pytest.mark.parametrize("kind", ["blurred", "resolution_loss"])
def test_a_smooth_product_blurred_or_upscaled_has_a_soft_outline(judged, kind):
    bad = judged["colorwheel", kind]
    assert bad.quarantined and bad.categories == {"detail"}, bad.reasons
    assert any(r.startswith("The product's outline is soft") for r in bad.reasons), bad.reasons


@pytest.mark.parametrize("product", ["colorwheel", "coin_1"])
def test_posterised_tones_are_a_detail_fault(judged, product):
    bad = judged[product, "posterized"]
    assert bad.quarantined and "detail" in bad.categories, bad.reasons
    assert any(r.startswith("The product's tones were posterised") for r in bad.reasons), bad.reasons


def test_a_stretched_brushed_can_is_named_stretched_not_incomplete(judged):
    bad = judged["can_silver@7", "stretched"]
    assert bad.quarantined and bad.categories == {"identity"}, bad.reasons
    assert any(r.startswith("The product is stretched") for r in bad.reasons), bad.reasons


def test_the_same_can_clipped_flat_is_still_incomplete(judged):
    bad = judged["can_silver@7", "clipped_edges"]
    assert bad.quarantined and "completeness" in bad.categories, bad.reasons


@pytest.mark.parametrize("product", ["colorwheel", "coin_1", "can_silver@7"])
def test_their_clean_edits_pass(judged, product):
    clean = judged[product, "clean"]
    assert not clean.quarantined, clean.reasons


def test_an_outline_that_stands_out_from_no_backdrop_gets_no_verdict(judged):
    """A silver can on a grey canvas: its outline has too little contrast to measure; the rest is judged."""
    bad = judged["can_silver@7", "grey_canvas"]
    assert bad.quarantined and "background" in bad.categories, bad.reasons
    assert not any("outline is soft" in r for r in bad.reasons), bad.reasons
