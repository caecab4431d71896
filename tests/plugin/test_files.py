"""The plugin serves files only from its configured storage roots: traversal in every form is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.plugin.files import (
    RefusedPath,
    StorageRoots,
    file_href,
    locate,
    media_type,
    resolve,
)


@pytest.fixture
def roots(tmp_path: Path) -> StorageRoots:
    for name in ("work", "published", "photos", "secret"):
        (tmp_path / name).mkdir()
    (tmp_path / "work" / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "work" / "runs" / "r1" / "report.html").write_text("<h1>report</h1>")
    (tmp_path / "published" / "ball red.png").write_bytes(b"png")
    (tmp_path / "photos" / "ball.png").write_bytes(b"src")
    (tmp_path / "secret" / "passwords.txt").write_text("hunter2")
    (tmp_path / "work" / ".env").write_text("TOKEN=x")
    return StorageRoots(workspace=str(tmp_path / "work"), published=str(tmp_path / "published"),
                        sources={"source": str(tmp_path / "photos")})


def test_serves_files_under_each_root(roots: StorageRoots, tmp_path: Path):
    assert resolve(roots, "work", "runs/r1/report.html").endswith("/work/runs/r1/report.html")
    assert resolve(roots, "published", "ball red.png").endswith("/published/ball red.png")
    assert resolve(roots, "published", "ball%20red.png").endswith("/published/ball red.png")
    assert resolve(roots, "source", "ball.png").startswith("file://")


@pytest.mark.parametrize("path", [
    "../secret/passwords.txt",
    "runs/../../secret/passwords.txt",
    "runs/r1/../../../secret/passwords.txt",
    "%2e%2e/secret/passwords.txt",
    "%2E%2E%2Fsecret%2Fpasswords.txt",
    "%252e%252e/secret/passwords.txt",
    "%25252e%25252e/secret/passwords.txt",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "//etc/passwd",
    "~/.ssh/id_rsa",
    "C:/Windows/win.ini",
    "..\\secret\\passwords.txt",
    "runs/r1/report.html\x00.png",
    "./runs/r1/report.html",
    "runs//r1/report.html",
    ".env",
    "",
])
def test_traversal_and_absolute_paths_are_refused(roots: StorageRoots, path: str):
    with pytest.raises(RefusedPath):
        resolve(roots, "work", path)


def test_symlink_out_of_the_root_is_refused(roots: StorageRoots, tmp_path: Path):
    (tmp_path / "work" / "runs" / "r1" / "leak.txt").symlink_to(tmp_path / "secret" / "passwords.txt")
    (tmp_path / "work" / "linked").symlink_to(tmp_path / "secret", target_is_directory=True)
    with pytest.raises(RefusedPath):
        resolve(roots, "work", "runs/r1/leak.txt")
    with pytest.raises(RefusedPath):
        resolve(roots, "work", "linked/passwords.txt")
    # a symlink into another configured root does not make that file part of this root either
    (tmp_path / "work" / "pub.png").symlink_to(tmp_path / "published" / "ball red.png")
    with pytest.raises(RefusedPath):
        resolve(roots, "work", "pub.png")


def test_unknown_roots_missing_files_and_directories_are_refused(roots: StorageRoots):
    for root, path in (("secret", "passwords.txt"), ("file:", "etc/passwd"), ("work", "runs/r1/missing.html"),
                       ("work", "runs/r1"), ("published", "../work/runs/r1/report.html")):
        with pytest.raises(RefusedPath):
            resolve(roots, root, path)


def test_locate_maps_uris_back_to_the_deepest_root(tmp_path: Path):
    roots = StorageRoots(workspace=str(tmp_path / "w"), published=str(tmp_path / "w" / "pub"))
    assert locate(roots, str(tmp_path / "w" / "pub" / "a b.png")) == ("published", "a b.png")
    assert locate(roots, f"file://{tmp_path}/w/runs/x/report.html") == ("work", "runs/x/report.html")
    assert locate(roots, "/etc/passwd") is None
    assert locate(roots, None) is None
    assert file_href(roots, str(tmp_path / "w" / "pub" / "a b.png"), "/p") == "/p/files/published/a%20b.png"
    assert file_href(roots, "s3://bucket/key.png", "/p") is None


def test_s3_roots_are_joined_not_touched(tmp_path: Path):
    roots = StorageRoots(workspace="s3://bucket/work", published="s3://bucket/pub")
    assert resolve(roots, "work", "runs/r1/report.html") == "s3://bucket/work/runs/r1/report.html"
    with pytest.raises(RefusedPath):
        resolve(roots, "work", "../pub/x.png")
    assert locate(roots, "s3://bucket/pub/x.png") == ("published", "x.png")


def test_bad_root_names_and_media_types():
    with pytest.raises(ValueError):
        StorageRoots(workspace="/w", published="/p", sources={"work": "/x"})
    with pytest.raises(ValueError):
        StorageRoots(workspace="/w", published="/p", sources={"../x": "/x"})
    assert media_type("a/report.html").startswith("text/html")
    assert media_type("x.JPG") == "image/jpeg"
    assert media_type("x.exe") == "application/octet-stream"
