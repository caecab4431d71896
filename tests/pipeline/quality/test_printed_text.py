"""The product's own printed text, judged by its letter strokes (``reframe._printed_text``).

A can's label is shaded across its width; with the lettering painted out the shading alone used to
match the source at 70 % and the gate named only the detail it lost. Comparing strokes (the window
minus its blur) says the text is gone, and a clean edit of the same can still matches.
"""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench import corpus
from airflow_image_catalog.tooling.bench.quality import judge

SIDE = 1000


@pytest.fixture(scope="module")
def judged():
    products = [corpus.product(name) for name in ("can_soda@7", "can_silver@11", "box_tea@7")]
    items = [i for i in corpus.items(products, SIDE, kinds=("text_altered",), engine=False)
             if i.kind != "clean" or i.name.endswith("/q92")]  # one clean variant: make bench-quality judges all
    return judge(items)


@pytest.mark.parametrize("product", ["can_soda@7", "can_silver@11", "box_tea@7"])
def test_painted_out_lettering_is_a_text_fault(judged, product):
    bad = next(j for j in judged if j.product == product and j.kind == "text_altered")
    assert bad.quarantined and "text" in bad.categories, bad.reasons
    assert any("printed text" in reason for reason in bad.reasons), bad.reasons


@pytest.mark.parametrize("product", ["can_soda@7", "can_silver@11", "box_tea@7"])
def test_clean_edits_keep_their_lettering(judged, product):
    clean = [j for j in judged if j.product == product and j.kind == "clean"]
    assert clean and all("text" not in j.categories for j in clean), [j.reasons for j in clean]
