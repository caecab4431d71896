"""Shared fixtures: procedural samples (with truth masks) generated once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.imaging.engine import decode_image
from airflow_image_catalog.tooling.samples import sample_specs

SAMPLE_STEMS = [sp.stem for sp in sample_specs()]


@pytest.fixture(scope="session")
def sample_dirs(sample_set: tuple[Path, Path]) -> tuple[Path, Path]:
    """The session's sample catalog (see tests/conftest.py), generated once for all tests."""
    return sample_set


@pytest.fixture(scope="session")
def samples(sample_dirs: tuple[Path, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """stem -> (decoded RGB image, bool truth mask)."""
    dest, truth_dir = sample_dirs
    out = {}
    for stem in SAMPLE_STEMS:
        path = next(dest.glob(f"{stem}.*"))
        image = decode_image(path.read_bytes())
        truth = np.asarray(Image.open(truth_dir / f"{stem}.png")) > 127
        out[stem] = (image, truth)
    return out


@pytest.fixture(scope="session")
def subject_masks(samples: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """stem -> engine subject mask, computed once (segmentation is the slow part)."""
    from airflow_image_catalog.imaging.engine import subject_mask

    return {stem: subject_mask(image) for stem, (image, _) in samples.items()}


@pytest.fixture(scope="session")
def small_sample(samples: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The smallest procedural sample, for tests that only need one realistic image."""
    return samples["ball_teal"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))
