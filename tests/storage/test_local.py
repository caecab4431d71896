from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.storage import (
    StorageError,
    join_uri,
    list_objects,
    normalize_uri,
    read_bytes,
    write_bytes,
)


def test_plain_paths_become_file_uris(tmp_path: Path):
    assert normalize_uri(tmp_path) == tmp_path.as_uri()
    assert normalize_uri("s3://bucket/prefix") == "s3://bucket/prefix"


def test_write_is_atomic_and_readable(tmp_path: Path):
    uri = join_uri(str(tmp_path), "a dir", "b.bin")
    write_bytes(uri, b"x" * 10)
    write_bytes(uri, b"second")
    assert read_bytes(uri) == b"second"
    assert not list((tmp_path / "a dir").glob(".*tmp")), "temp file left behind"


def test_listing_skips_hidden_and_is_sorted(tmp_path: Path):
    for name in ["b.jpg", "a.jpg", ".hidden.jpg", "sub/c.png", ".git/x.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"1")
    names = [o.uri.rsplit("/", 1)[-1] for o in list_objects(str(tmp_path))]
    assert names == ["a.jpg", "b.jpg", "c.png"]


def test_errors_name_the_location(tmp_path: Path):
    with pytest.raises(StorageError, match="does not exist"):
        list_objects(str(tmp_path / "missing"))
    with pytest.raises(StorageError, match="cannot read"):
        read_bytes(str(tmp_path / "nope.jpg"))
    with pytest.raises(StorageError, match="refusing path component"):
        join_uri(str(tmp_path), "../escape.jpg")
    with pytest.raises(StorageError, match="no storage backend for scheme 'gopher'"):
        read_bytes("gopher://host/x")
