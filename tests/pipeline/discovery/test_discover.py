from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.discovery.discover import (
    MAX_MAPPED_CHUNKS,
    discover_images,
    write_chunk_manifests,
)
from airflow_image_catalog.storage import read_json
from airflow_image_catalog.workspace.manifest import ChunkManifest, sha256_hex


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_discovery_keeps_images_hashes_them_and_makes_unique_ids(tmp_path: Path):
    _tree(tmp_path, {
        "mug.jpg": b"jpg-bytes",
        "mug.png": b"png-bytes",
        "notes.txt": b"not an image",
        "masks/mug.png": b"mask",
        "shoes/Red Shoe.JPG": b"shoe",
    })
    found = discover_images(str(tmp_path))
    ids = {item.image_id: item for item in found.items}
    assert set(ids) == {"mug", "mug-png", "shoes/Red_Shoe"}
    assert ids["mug"].source_sha256 == sha256_hex(b"jpg-bytes") and ids["mug"].bytes == 9
    assert sorted(found.ignored) == ["masks/mug.png", "notes.txt"]


def test_chunk_manifests_cover_every_image_once(tmp_path: Path):
    src = tmp_path / "src"
    _tree(src, {f"p{i:03d}.jpg": bytes([i]) for i in range(23)})
    found = discover_images(str(src))
    uris = write_chunk_manifests(found, run_root=str(tmp_path / "run"), run_key="r1", chunk_size=10)
    chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in uris]
    assert [len(c.items) for c in chunks] == [10, 10, 3]
    assert [c.chunk_index for c in chunks] == [0, 1, 2]
    assert sorted(i.image_id for c in chunks for i in c.items) == sorted(i.image_id for i in found.items)


def test_too_many_chunks_is_a_clear_error(tmp_path: Path):
    src = tmp_path / "src"
    _tree(src, {f"p{i}.jpg": b"x" for i in range(MAX_MAPPED_CHUNKS + 1)})
    with pytest.raises(ValueError, match="raise chunk_size"):
        write_chunk_manifests(discover_images(str(src)), run_root=str(tmp_path), run_key="r", chunk_size=1)


def test_images_published_from_the_same_bytes_and_recipe_are_left_out(tmp_path: Path):
    _tree(tmp_path, {"a.jpg": b"a-bytes", "b.jpg": b"b-bytes", "c.jpg": b"c-bytes"})
    published = {
        "a": {"source_sha256": sha256_hex(b"a-bytes"), "recipe_fingerprint": "r1"},
        "b": {"source_sha256": sha256_hex(b"old b"), "recipe_fingerprint": "r1"},  # changed since
    }
    found = discover_images(str(tmp_path), published=published, recipe_fingerprint="r1")
    assert [i.image_id for i in found.items] == ["b", "c"] and found.unchanged == ["a"]
    # a changed recipe re-edits everything; no recipe given compares the bytes only
    assert found.unchanged == discover_images(str(tmp_path), published=published).unchanged
    assert discover_images(str(tmp_path), published=published, recipe_fingerprint="r2").unchanged == []
