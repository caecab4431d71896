"""catalog_refresh through network backends: the local edit service behind ``openai`` and ``bfl`` connections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.provenance import read_c2pa, read_xmp
from tests.dags.test_catalog_refresh import _run
from tests.pki import throwaway_pki

pytestmark = pytest.mark.usefixtures("airflow_db")

SAMPLES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg")
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 3}
STEPS = 2  # marketplace_white_square: white_background, square_canvas


def _source(tmp_path: Path, images: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in SAMPLES:
        (source / name).write_bytes((images / name).read_bytes())
    # a truncated upload whose header still reads: it must fail before any (paid) request
    jpeg = (images / "box_tea.jpg").read_bytes()
    (source / "garbled.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    return source


def _connect(monkeypatch, conn_id: str, host: str, backend: str, key: str) -> str:
    conn = {"conn_type": "image_edit", "host": host, "password": key, "extra": {"backend": backend, **FAST}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def _edit_records(tmp_path: Path) -> dict[str, dict]:
    manifests = (tmp_path / "work" / "runs").glob("*/edits/chunk-*.json")
    return {r["image_id"]: r for m in manifests for r in json.loads(m.read_text())["items"]}


def _assert_published(tmp_path: Path, report: dict) -> None:
    edited = {Path(name).stem for name in SAMPLES}
    assert report["counts"]["edited"] == len(SAMPLES) and report["counts"]["failed"] == 1
    assert {f["image_id"] for f in report["failures"]} == {"garbled"}
    assert {p.stem for p in (tmp_path / "published").iterdir()} == edited


def test_openai_backend_through_the_dag(tmp_path: Path, sample_set, service, monkeypatch):
    pki = throwaway_pki()  # signing enabled: the published files carry a C2PA manifest too
    (tmp_path / "chain.pem").write_text(pki["chain"])
    (tmp_path / "key.pem").write_text(pki["key"])
    monkeypatch.setenv("CATALOG_C2PA_CERT", str(tmp_path / "chain.pem"))
    monkeypatch.setenv("CATALOG_C2PA_KEY", str(tmp_path / "key.pem"))
    service.state.api_key = "sk-dag-test-key"
    conn_id = _connect(monkeypatch, "openai_dag", service.openai_base_url, "openai", "sk-dag-test-key")

    dagrun, report = _run(tmp_path, _source(tmp_path, sample_set[0]), backend_conn_id=conn_id, chunk_size=2)

    assert dagrun.state == "success"
    _assert_published(tmp_path, report)
    # one request per edited image and recipe step; none for the image that could not be read
    assert service.state.served["POST /v1/images/edits"] == len(SAMPLES) * STEPS == service.state.served["total"]
    records = _edit_records(tmp_path)
    for image_id, record in records.items():
        if image_id == "garbled":
            assert record["status"] == "failed_final" and record["usage"] == []
            continue
        assert [u["step"] for u in record["usage"]] == ["white_background", "square_canvas"]
        for usage in record["usage"]:
            assert usage["provider"] == "openai" and usage["batch"] is False
            assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
            assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    work = "".join(p.read_text() for p in (tmp_path / "work").rglob("*.json"))
    assert "sk-dag-test-key" not in work
    for published in (tmp_path / "published").iterdir():  # provenance readable from the files themselves
        data = published.read_bytes()
        xmp = read_xmp(data)
        assert xmp["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
        assert xmp["model"] == "gpt-image-2" and xmp["recipe_name"] == "marketplace_white_square"
        store = read_c2pa(data, trust_anchors=pki["ca"])
        assert store["validation_state"] == "Trusted"
        manifest = store["manifests"][store["active_manifest"]]
        actions = [a for assertion in manifest["assertions"] if assertion["label"].startswith("c2pa.actions")
                   for a in assertion["data"]["actions"]]
        assert [a["parameters"]["step"] for a in actions if a["action"] == "c2pa.edited"] == [
            "white_background", "square_canvas"]


def test_bfl_backend_deferrable_through_the_dag(tmp_path: Path, sample_set, service, monkeypatch):
    conn_id = _connect(monkeypatch, "bfl_dag", service.url, "bfl", "bfl-dag-key")

    dagrun, report = _run(tmp_path, _source(tmp_path, sample_set[0]), backend_conn_id=conn_id, chunk_size=4,
                          deferrable=True)

    assert dagrun.state == "success"
    _assert_published(tmp_path, report)
    assert service.state.served["POST /v1/flux-kontext-pro"] == len(SAMPLES) * STEPS  # never resubmitted
    jobs = json.loads(next((tmp_path / "work" / "runs").glob("*/jobs/chunk-00000.json")).read_text())
    assert jobs["pending"] == {} and all(r["job_id"] for r in jobs["records"] if r["image_id"] != "garbled")
    for image_id, record in _edit_records(tmp_path).items():
        if image_id != "garbled":
            assert [u["credits"] for u in record["usage"]] == [4.0] * STEPS
