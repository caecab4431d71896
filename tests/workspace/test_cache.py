"""The content-addressed result cache: keys over everything that shapes an edit, verified reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.workspace.cache import CachedResult, ResultCache, cache_key
from airflow_image_catalog.workspace.manifest import sha256_hex

BASE = {"source_sha256": "a" * 64, "recipe_fingerprint": "f" * 64,
        "backend": {"backend": "openai", "model": "gpt-image-2", "quality": "high"},
        "inputs": [{"mask": None, "references": []}]}


def _result(data: bytes = b"edited-bytes") -> CachedResult:
    return CachedResult(data=data, format="jpeg", extension="jpg", width=8, height=8, sha256=sha256_hex(data),
                        usage=[{"step": "s", "output_tokens": 10}], steps=[{"id": "s"}])


@pytest.mark.parametrize("change", [
    {"source_sha256": "b" * 64},
    {"recipe_fingerprint": "e" * 64},
    {"backend": {**BASE["backend"], "model": "gpt-image-1"}},
    {"backend": {**BASE["backend"], "quality": "low"}},
    {"inputs": [{"mask": "c" * 64, "references": []}]},
    {"inputs": [{"mask": None, "references": ["d" * 64]}]},
])
def test_key_changes_with_every_input(change):
    assert cache_key(**BASE) != cache_key(**{**BASE, **change})


def test_key_is_stable_and_order_independent_for_dicts():
    reordered = {**BASE, "backend": dict(reversed(list(BASE["backend"].items())))}
    assert cache_key(**BASE) == cache_key(**reordered)
    assert len(cache_key(**BASE)) == 64


def test_put_get_round_trip_and_miss(tmp_path: Path):
    cache = ResultCache(str(tmp_path / "work"))
    key = cache_key(**BASE)
    assert cache.get(key) is None
    cache.put(key, _result())
    hit = cache.get(key)
    assert hit is not None and hit.data == b"edited-bytes" and hit.usage == [{"step": "s", "output_tokens": 10}]
    assert (tmp_path / "work" / "cache" / key[:2] / key / "meta.json").exists()


def test_corrupt_or_half_written_entries_are_misses(tmp_path: Path):
    cache = ResultCache(str(tmp_path))
    key = cache_key(**BASE)
    cache.put(key, _result())
    (tmp_path / "cache" / key[:2] / key / "result.jpg").write_bytes(b"tampered")
    assert cache.get(key) is None  # never serve bytes that do not match
    other = cache_key(**{**BASE, "source_sha256": "0" * 64})
    entry = tmp_path / "cache" / other[:2] / other
    entry.mkdir(parents=True)
    (entry / "result.jpg").write_bytes(b"image written, killed before meta.json")
    assert cache.get(other) is None


def test_hostile_keys_are_refused(tmp_path: Path):
    with pytest.raises(ValueError):
        ResultCache(str(tmp_path)).get("../../etc/passwd")
