"""catalog_refresh with every location on ``s3://``: a moto S3 server on loopback, started by the tests."""

from __future__ import annotations

import json

import pytest

from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.dags.test_catalog_refresh import _dag

pytestmark = pytest.mark.usefixtures("airflow_db")

SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg", "broken_upload.jpg")


def test_whole_dag_on_s3_then_an_unchanged_refresh_edits_nothing(s3_bucket, sample_set):
    images, _ = sample_set
    for name in SAMPLES:
        s3_bucket.put(f"catalog/source/{name}", (images / name).read_bytes())
    s3_bucket.put("catalog/source/notes.txt", b"not an image")
    conf = {"source": s3_bucket.uri_for("catalog/source"), "workspace": s3_bucket.uri_for("catalog/work"),
            "published": s3_bucket.uri_for("catalog/published"), "chunk_size": 2}

    dagrun = _dag().test(run_conf=conf)

    assert dagrun.state == "success"
    keys = {o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]}
    published = sorted(k for k in keys if k.startswith("catalog/published/"))
    assert published == ["catalog/published/ball_red.jpg", "catalog/published/box_tea.jpg",
                         "catalog/published/can_soda.jpg"]
    (report_key,) = [k for k in keys if k.endswith("/report.json") and "/cost/" not in k]
    report = json.loads(s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=report_key)["Body"].read())
    assert report["counts"]["published"] == 3 and report["counts"]["failed_final"] == 1
    assert report["report_html"].startswith(f"s3://{s3_bucket.name}/catalog/work/runs/")
    assert {k.split("/")[2] for k in keys if k.startswith("catalog/work/")} >= {"runs", "cache", "state"}
    assert any(k.endswith("/quality/data_docs/chunk-00000/index.html") for k in keys)

    again = _dag().test(run_conf=conf)  # the next night, nothing changed: nothing to edit, nothing paid
    assert again.state == "success"
    keys = {o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]}
    runs = {k.split("/")[3] for k in keys if k.startswith("catalog/work/runs/")}
    assert len(runs) == 2
    latest = next(r for r in runs if r != safe_run_key(dagrun.run_id))
    discovery = json.loads(s3_bucket.client.get_object(
        Bucket=s3_bucket.name, Key=f"catalog/work/runs/{latest}/discovery.json")["Body"].read())
    assert discovery["images"] == 0 and discovery["unchanged"] == 3
    assert discovery["refused_before"] == ["broken_upload"]  # failed finally with these bytes: not tried again
