"""``python -m airflow_image_catalog.tooling.s3 mirror``: how the offline compose stack seeds its S3 server."""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.s3 import main, s3_client, s3_environment


def test_mirror_makes_the_bucket_and_uploads_every_file_under_the_prefix(tmp_path, moto_server, monkeypatch, capsys):
    for name, value in s3_environment(moto_server.url).items():
        monkeypatch.setenv(name, value)
    (tmp_path / "nested").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "nested" / "b.png").write_bytes(b"png")
    assert main(["mirror", str(tmp_path), "s3://mirror-test/samples", "--endpoint-url", moto_server.url]) == 0
    client = s3_client(moto_server.url)
    keys = {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket="mirror-test")["Contents"]}
    assert keys == {"samples/a.jpg": 4, "samples/nested/b.png": 3}
    assert "2 files" in capsys.readouterr().out
    # again (the bucket exists): overwrites, as `mc mirror --overwrite` does
    (tmp_path / "a.jpg").write_bytes(b"jpeg-2")
    assert main(["mirror", str(tmp_path), "s3://mirror-test/samples", "--endpoint-url", moto_server.url]) == 0
    assert client.get_object(Bucket="mirror-test", Key="samples/a.jpg")["Body"].read() == b"jpeg-2"


def test_mirror_names_a_source_that_is_not_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["mirror", str(tmp_path / "missing"), "s3://b/p"])
    assert "source:" in capsys.readouterr().err
