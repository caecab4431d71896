"""Free image features on images whose truth is known: the procedural samples' label text, backdrops, fill."""

from __future__ import annotations

import numpy as np

from airflow_image_catalog.pipeline.routing.features import features_of, image_features
from airflow_image_catalog.tooling.samples import product_png, render_sample_layers, sample_specs


def test_text_flag_agrees_with_the_samples_known_labels():
    right = []
    for spec in sample_specs():
        image, _, boxes = render_sample_layers(spec, 7)
        right.append(features_of(image).text == bool(boxes))
    assert sum(right) >= 11, right  # measured: 11 of 12 (can_soda's curved label is missed)


def test_backdrop_kinds():
    image, _, _ = render_sample_layers(sample_specs()[3], 7)  # ball_red on a studio sweep
    assert features_of(image).backdrop == "plain"
    white = image_features(product_png(200, 160))
    assert white.backdrop == "white" and not white.text and white.size == "small"
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[30:90, 30:90] = (200, 40, 40, 255)
    cutout = features_of(rgba)
    assert cutout.backdrop == "transparent" and cutout.fill == 0.5 and cutout.fill_bucket == "normal"
    rng = np.random.default_rng(1)
    scene = rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)
    assert features_of(scene).backdrop == "busy"


def test_fill_and_stratum():
    canvas = np.full((1200, 1200, 3), 255, np.uint8)
    canvas[100:1100, 300:900] = (30, 60, 200)  # long side 1000 of 1200
    features = features_of(canvas)
    assert features.fill == 0.833 and features.fill_bucket == "normal" and features.size == "medium"
    assert features.stratum == "white/notext/normal/medium"
    assert features.to_dict()["stratum"] == features.stratum
