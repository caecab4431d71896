from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from airflow_image_catalog.tooling.samples import REAL_PHOTOS, REAL_PRODUCTS, make_samples, sample_specs


def test_samples_written_with_truth(sample_dirs):
    dest, truth = sample_dirs
    specs = sample_specs()
    assert len(specs) >= 10
    exts = {sp.ext for sp in specs}
    assert exts == {".jpg", ".png"}
    for sp in specs:
        img = Image.open(dest / f"{sp.stem}{sp.ext}")
        assert 700 <= max(img.size) <= 1600 and img.size == sp.size
        mask = Image.open(truth / f"{sp.stem}.png")
        assert mask.mode == "L" and mask.size == img.size
        values = set(np.unique(np.asarray(mask)).tolist())
        assert values == {0, 255}
        arr = np.asarray(img.convert("RGB"))
        m = np.asarray(mask) > 0
        assert (arr[~m] > 250).all(-1).mean() < 0.01  # background is not white
    for name in REAL_PHOTOS:
        assert (dest / f"photo_{name}.jpg").exists()
    for name in REAL_PRODUCTS:  # real product photos, with their truth
        assert (dest / name).exists() and (truth / f"{Path(name).stem}.png").exists()
    assert (dest / "broken_upload.jpg").exists()
    assert {sp.size[0] > sp.size[1] for sp in specs} == {True, False}
    assert any(sp.size[0] == sp.size[1] for sp in specs)


def test_make_samples_is_deterministic_and_idempotent(tmp_path, sample_dirs):
    dest, truth = sample_dirs
    # same seed -> identical bytes as the session fixture's copy (generated elsewhere)
    spec = sample_specs()[10]
    from airflow_image_catalog.tooling.samples import render_sample

    image, mask = render_sample(spec, 7)
    assert np.array_equal(mask, np.asarray(Image.open(truth / f"{spec.stem}.png")) > 0)
    mtimes = {p: p.stat().st_mtime_ns for p in dest.iterdir()}
    make_samples(dest, truth, with_broken=True, limit=3)  # a subset keeps the test quick
    assert {p: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes  # nothing rewritten


def test_cli_prints_count(tmp_path: Path):
    dest = tmp_path / "data" / "samples"
    repo = Path(__file__).resolve().parents[3]
    res = subprocess.run(
        [sys.executable, "-m", "airflow_image_catalog.tooling.samples", str(dest), "--with-broken", "--limit", "2"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert res.stdout.strip().startswith(f"{2 + len(REAL_PRODUCTS) + len(REAL_PHOTOS) + 1} files")
    assert len(res.stdout.strip().splitlines()) == 1
    assert (tmp_path / "data" / "samples_truth" / f"{sample_specs()[0].stem}.png").exists()
