"""The peer ``make bench-quality`` judges beside the gate: calibrated on clean edits, it passes them and names
the faults its checks can see with their category."""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.bench import corpus, gate_peer

SIDE = 600


@pytest.fixture(scope="module")
def rows():
    product = corpus.product("bottle_amber@7")
    kinds = ("grey_canvas", "under_filled", "recoloured", "blurred", "hole")
    items = list(corpus.items([product], SIDE, kinds=kinds))
    return {i.kind + "/" + i.variant: gate_peer.measure(product.source_bytes(), i.edited_bytes, product.alpha > 0.5)
            for i in items}


def test_calibrated_on_clean_edits_the_peer_passes_them(rows):
    clean = [r for name, r in rows.items() if name.startswith("clean/")]
    peer = gate_peer.Peer.calibrated(clean)
    assert all(not peer.categories(r) for r in clean)
    # a clean edit's product, cut out onto white, is the source's
    assert min(r["ssim"] for r in clean) > 0.85 and max(r["colour_de"] for r in clean) < 4


@pytest.mark.parametrize(("kind", "category"), [("grey_canvas/v1", "background"), ("under_filled/v1", "framing"),
                                                ("recoloured/v1", "identity"), ("blurred/v1", "detail")])
def test_the_peer_names_what_its_checks_see(rows, kind, category):
    peer = gate_peer.Peer.calibrated([r for name, r in rows.items() if name.startswith("clean/")])
    assert category in peer.categories(rows[kind]), rows[kind]


def test_the_peer_needs_clean_edits():
    with pytest.raises(ValueError, match="clean edits"):
        gate_peer.Peer.calibrated([])


def test_the_bench_prints_the_peer_beside_the_gate(capsys):
    from airflow_image_catalog.tooling.bench.quality import main

    main(["--side", "400", "--halves", "held_out", "--products", "ball_red@7", "--kinds", "clean,grey_canvas,blurred",
          "--real-photos", "0", "--speed-images", "0", "--samples", "0"])
    out = capsys.readouterr().out
    assert "limits from the tuning half's clean edits" in out
    assert "peer: quar." in out and "peer clean edits" in out
    assert "the gate" in out and "the peer" in out
