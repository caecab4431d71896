"""S3Storage against a loopback moto server, with S3 faults injected by a proxy in front of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_image_catalog.storage import (
    LocalStorage,
    ObjectInfo,
    S3Storage,
    StorageError,
    delete,
    exists,
    join_uri,
    list_objects,
    normalize_uri,
    read_bytes,
    read_json,
    storage_for,
    write_bytes,
    write_json,
)
from airflow_image_catalog.storage.s3 import clear_client_cache, shared_client, split_s3_uri
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, S3Bucket, point_s3_at, s3_environment


def keys(listing: list[ObjectInfo], root: str) -> list[str]:
    """What discovery does with a listing: ``uri[len(root):]`` is the key below ``root``."""
    return [obj.uri[len(root):].lstrip("/") for obj in listing]


# -- the storage functions on s3:// URIs ----------------------------------------------------
def test_round_trip_bytes_and_json(s3_bucket: S3Bucket):
    uri = write_bytes(s3_bucket.uri_for("runs/r1/out.bin"), b"\x00\x01payload")
    assert uri == f"s3://{s3_bucket.name}/runs/r1/out.bin"
    assert read_bytes(uri) == b"\x00\x01payload"
    manifest = write_json(join_uri(s3_bucket.uri, "runs", "r1", "manifest.json"), {"images": {"a": {"n": 1}}})
    assert read_json(manifest) == {"images": {"a": {"n": 1}}}
    assert isinstance(storage_for(uri), S3Storage)
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="runs/r1/manifest.json")
    assert head["ContentType"] == "application/json"


def test_keys_with_spaces_and_unicode_round_trip_unencoded(s3_bucket: S3Bucket):
    root = join_uri(s3_bucket.uri, "photos 2026")
    uri = join_uri(root, "Küche", "red mug #2 (ü) 🎁.jpg")
    assert uri == f"s3://{s3_bucket.name}/photos 2026/Küche/red mug #2 (ü) 🎁.jpg"
    assert normalize_uri(uri) == uri
    assert write_bytes(uri, b"mug") == uri
    stored = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert [o["Key"] for o in stored] == ["photos 2026/Küche/red mug #2 (ü) 🎁.jpg"]  # not %-encoded
    assert read_bytes(s3_bucket.uri_for("photos 2026/Küche/red mug #2 (ü) 🎁.jpg")) == b"mug"
    listing = list_objects(root)
    assert [o.uri for o in listing] == [uri]
    assert keys(listing, root) == ["Küche/red mug #2 (ü) 🎁.jpg"]
    assert split_s3_uri(uri) == (s3_bucket.name, "photos 2026/Küche/red mug #2 (ü) 🎁.jpg")


def test_exists_and_idempotent_delete(s3_bucket: S3Bucket):
    uri = s3_bucket.put("a/x.jpg", b"12345")
    assert exists(uri) and not exists(s3_bucket.uri_for("a/missing.jpg"))
    assert not exists(s3_bucket.uri_for("a"))  # a prefix is not an object
    delete(uri)
    delete(uri)  # missing is fine: a rerun deletes twice
    assert not exists(uri)


@pytest.fixture(params=["file", "s3"])
def any_root(request, tmp_path: Path) -> str:
    """The same protocol tests on both backends."""
    if request.param == "file":
        return tmp_path.as_uri()
    return request.getfixturevalue("s3_bucket").uri


def test_both_backends_keep_the_protocol(any_root: str):
    uri = join_uri(any_root, "dir", "b.jpg")
    write_bytes(uri, b"abc")
    write_bytes(join_uri(any_root, "dir", "a.jpg"), b"a")
    listing = list_objects(join_uri(any_root, "dir"))
    assert [o.uri.rsplit("/", 1)[-1] for o in listing] == ["a.jpg", "b.jpg"]
    assert [o.size for o in listing] == [1, 3]
    assert storage_for(uri).exists(uri)
    delete(uri)
    delete(uri)
    assert not storage_for(uri).exists(uri)
    assert ObjectInfo("u", 1) == ObjectInfo("u", 1, None)  # positional construction still works


# -- listing ---------------------------------------------------------------------------------
def test_listing_paginates_thousands_of_keys_sorted(s3_bucket: S3Bucket, s3_faults):
    names = [f"bulk/img-{i:05d}.jpg" for i in range(2500)]
    s3_bucket.put_many(reversed(names))  # setup straight into moto, not through the code under test
    listing = list_objects(s3_bucket.uri_for("bulk"))
    assert [o.uri for o in listing] == [s3_bucket.uri_for(n) for n in names]
    assert all(o.size == 1 and o.etag for o in listing)
    assert s3_faults.stats()["forwarded"]["LIST"] == 3  # 1000 keys a page


def test_prefix_is_a_folder_or_the_object_itself(s3_bucket: S3Bucket):
    for key in ["a/b/1.jpg", "a/b/sub/2.jpg", "a/bc/3.jpg", "a/b.jpg", "top.jpg"]:
        s3_bucket.put(key, key.encode())
    root = s3_bucket.uri_for("a/b")
    assert keys(list_objects(root), root) == ["1.jpg", "sub/2.jpg"]  # not a/bc/, not a/b.jpg
    assert keys(list_objects(root + "/"), root) == ["1.jpg", "sub/2.jpg"]
    only = list_objects(s3_bucket.uri_for("a/bc/3.jpg"))
    assert only == [ObjectInfo(s3_bucket.uri_for("a/bc/3.jpg"), 10, only[0].etag)] and only[0].etag
    assert list_objects(s3_bucket.uri_for("nothing/here")) == []  # an empty prefix is legitimately empty
    assert len(list_objects(s3_bucket.uri)) == 5
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="top.jpg")
    assert list_objects(s3_bucket.uri_for("top.jpg"))[0].etag == head["ETag"].strip('"')


def test_hidden_keys_and_folder_markers_are_skipped(s3_bucket: S3Bucket):
    for key in ["src/b.jpg", "src/a.jpg", "src/.hidden.jpg", "src/.cache/x.png", "src/sub/.x/y.png",
                "src/sub/c.png", "src/empty/"]:
        s3_bucket.put(key, b"" if key.endswith("/") else b"1")
    root = s3_bucket.uri_for("src")
    assert keys(list_objects(root), root) == ["a.jpg", "b.jpg", "sub/c.png"]
    assert keys(list_objects(s3_bucket.uri_for("src/.cache")), s3_bucket.uri_for("src/.cache")) == ["x.png"]


def test_local_listing_keeps_raising_for_a_missing_folder(tmp_path: Path):
    with pytest.raises(StorageError, match="does not exist"):
        LocalStorage().list((tmp_path / "missing").as_uri())
    LocalStorage().delete((tmp_path / "missing.jpg").as_uri())  # deleting nothing is fine


# -- errors ----------------------------------------------------------------------------------
def test_errors_name_the_uri_and_the_s3_code(s3_bucket: S3Bucket):
    missing = s3_bucket.uri_for("photos/none.jpg")
    with pytest.raises(StorageError, match=r"cannot read s3://.*/photos/none\.jpg: NoSuchKey") as info:
        read_bytes(missing)
    assert info.value.code == "NoSuchKey" and info.value.status == 404
    with pytest.raises(StorageError, match=r"cannot list s3://no-such-bucket-x/p: NoSuchBucket"):
        list_objects("s3://no-such-bucket-x/p")
    with pytest.raises(StorageError, match="not an object key"):
        write_bytes(s3_bucket.uri_for("folder/"), b"x")
    with pytest.raises(StorageError, match="no bucket"):
        read_bytes("s3:///key")


# -- retries through the fault proxy -----------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "inject", "times"),
    [
        ("GET", "slow_down", 1),
        ("GET", "fail", 2),
        ("GET", "drop", 1),
        ("PUT", "slow_down", 1),
        ("PUT", "fail", 2),
        ("PUT", "drop", 1),
        ("LIST", "slow_down", 1),
        ("LIST", "fail", 2),
        ("HEAD", "fail", 2),
    ],
)
def test_transient_faults_are_retried(s3_bucket: S3Bucket, s3_faults, kind: str, inject: str, times: int):
    uri = s3_bucket.put("in/photo.jpg", b"photo-bytes")
    getattr(s3_faults, inject)(kind, times)
    if kind == "GET":
        assert read_bytes(uri) == b"photo-bytes"
    elif kind == "PUT":
        assert write_bytes(uri, b"new") == uri
        assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="in/photo.jpg")["Body"].read() == b"new"
    elif kind == "LIST":
        assert [o.uri for o in list_objects(s3_bucket.uri_for("in"))] == [uri]
    else:
        assert exists(uri)
    stats = s3_faults.stats()
    outcome = "dropped" if inject == "drop" else "failed"
    assert stats[outcome] == {kind: times} and stats["forwarded"] == {kind: 1}
    assert not s3_faults.pending()


def test_a_body_cut_off_mid_download_is_read_again(s3_bucket: S3Bucket, s3_faults):
    data = bytes(range(256)) * 64
    uri = s3_bucket.put("big.bin", data)
    s3_faults.truncate("GET", 2)
    assert read_bytes(uri) == data
    assert s3_faults.stats()["truncated"] == {"GET": 2} and s3_faults.stats()["forwarded"] == {"GET": 3}


@pytest.mark.parametrize(("kind", "call"), [("GET", "read"), ("PUT", "write"), ("LIST", "list")])
def test_persistent_5xx_gives_up_after_max_attempts(s3_bucket: S3Bucket, s3_faults, monkeypatch, kind, call):
    monkeypatch.setenv("CATALOG_S3_MAX_ATTEMPTS", "2")
    clear_client_cache()
    uri = s3_bucket.put("p/x.jpg")
    s3_faults.fail(kind, times=None)
    action = {"read": lambda: read_bytes(uri), "write": lambda: write_bytes(uri, b"y"),
              "list": lambda: list_objects(s3_bucket.uri_for("p"))}[call]
    with pytest.raises(StorageError, match=rf"cannot {call} s3://{s3_bucket.name}/p.*InternalError \(HTTP 500") as info:
        action()
    assert "gave up after 2 attempts" in str(info.value)
    assert s3_faults.stats()["failed"] == {kind: 2}


def test_secrets_never_reach_error_messages(s3_bucket: S3Bucket, s3_faults, monkeypatch):
    uri = s3_bucket.put("s/x.jpg")
    # a misbehaving S3-compatible server that echoes the caller's keys in its error message
    s3_faults.fail("GET", times=None, status=403, code="SignatureDoesNotMatch",
                   message=f"bad signature for {ACCESS_KEY}:{SECRET_KEY}")
    errors = []
    for call in (lambda: read_bytes(uri), lambda: read_bytes(s3_bucket.uri_for("s/none.jpg")),
                 lambda: list_objects("s3://no-such-bucket-y")):
        with pytest.raises(StorageError) as info:
            call()
        errors.append(info.value)
    s3_faults.reset()
    point_s3_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("CATALOG_S3_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageError, match="EndpointConnectionError") as info:
        read_bytes(uri)
    errors.append(info.value)
    assert "SignatureDoesNotMatch" in str(errors[0]) and "***" in str(errors[0])
    for error in errors:
        assert error.__cause__ is None and error.__suppress_context__  # no unscrubbed botocore text in tracebacks
        text = f"{error} {error!r}"
        assert SECRET_KEY not in text and ACCESS_KEY not in text, text


# -- where the client comes from -----------------------------------------------------------------
def test_the_airflow_connection_wins_over_the_environment(s3_bucket: S3Bucket, monkeypatch):
    conn = json.loads(s3_environment(s3_bucket.endpoint_url)["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["extra"]["config_kwargs"] = {"read_timeout": 7}
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_S3", json.dumps(conn))
    monkeypatch.setenv("CATALOG_AWS_CONN_ID", "catalog_s3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # plain boto3 would fail here
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    clear_client_cache()
    uri = write_bytes(s3_bucket.uri_for("via-connection.jpg"), b"c")
    assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="via-connection.jpg")["Body"].read() == b"c"
    client = shared_client()
    assert client.meta.endpoint_url == s3_bucket.endpoint_url and client.meta.region_name == "us-east-1"
    assert client.meta.config.read_timeout == 7  # the connection's config_kwargs refine ours
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert read_bytes(uri) == b"c"


def test_without_a_connection_plain_boto3_uses_the_environment(s3_bucket: S3Bucket, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    monkeypatch.setenv("CATALOG_S3_MAX_ATTEMPTS", "4")
    clear_client_cache()
    assert write_bytes(s3_bucket.uri_for("via-env.jpg"), b"e")
    client = shared_client()
    assert client.meta.endpoint_url == s3_bucket.endpoint_url
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert client.meta.config.connect_timeout == 10.0


def test_one_client_per_connection_id_and_injected_clients(s3_bucket: S3Bucket):
    assert S3Storage().client is S3Storage().client is shared_client("aws_default")
    assert S3Storage(conn_id="other").client is not S3Storage().client
    clear_client_cache()
    injected = S3Storage(client=s3_bucket.client)
    uri = injected.write_bytes(s3_bucket.uri_for("injected.jpg"), b"i")
    assert injected.client is s3_bucket.client and injected.read_bytes(uri) == b"i"


def test_importing_storage_does_not_import_boto3():
    code = "import sys, airflow_image_catalog.storage as s; assert 's3' in s.BACKENDS; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
