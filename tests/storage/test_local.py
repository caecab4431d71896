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


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    import os

    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path: Path, umask, mask, mode):
    """A published catalog is read by web servers and other users: files get 0666 minus the umask, as
    ``open()`` would give them, not mkstemp's private 0600."""
    umask(mask)
    uri = write_bytes(join_uri(str(tmp_path), "published", "a.jpg"), b"jpeg")
    assert (Path(uri.removeprefix("file://")).stat().st_mode & 0o777) == mode
    write_bytes(uri, b"again")  # a replacement gets the same mode
    assert (Path(uri.removeprefix("file://")).stat().st_mode & 0o777) == mode


def test_temporary_files_stay_private_until_renamed(tmp_path: Path, umask, monkeypatch):
    import os

    umask(0o022)
    seen: dict[str, int] = {}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # while the bytes are being written: the temp file is owner-only
        seen["while_writing"] = os.fstat(fd).st_mode & 0o777
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    uri = write_bytes(join_uri(str(tmp_path), "feed.csv"), b"a,b\n")
    assert seen["while_writing"] == 0o600
    assert (Path(uri.removeprefix("file://")).stat().st_mode & 0o777) == 0o644
