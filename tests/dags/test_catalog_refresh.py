"""The whole catalog_refresh DAG through Airflow's own ``dag.test()``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from airflow_image_catalog.pipeline.publishing.provenance import read_xmp
from airflow_image_catalog.workspace.manifest import sha256_hex
from tests.conftest import REPO, copy_samples, write_strict_profile

pytestmark = pytest.mark.usefixtures("airflow_db")


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["catalog_refresh"]


def _run(tmp_path: Path, source: Path, **conf):
    conf = {
        "source": str(source),
        "workspace": str(tmp_path / "work"),
        "published": str(tmp_path / "published"),
        **conf,
    }
    dagrun = _dag().test(run_conf=conf)
    reports = list((tmp_path / "work" / "runs").glob("*/report.json"))
    return dagrun, (json.loads(reports[0].read_text()) if reports else None)


#: what a DAG file must not import at parse time (the dag-processor parses every file every 30 s):
#: the heavy libraries the tasks import inside ``execute``, and the tooling
HEAVY_AT_PARSE = ("cv2", "great_expectations", "skimage", "numpy", "PIL", "boto3", "duckdb", "openlineage.client",
                  "airflow_image_catalog.imaging.engine", "airflow_image_catalog.pipeline.editing.chunk",
                  "airflow_image_catalog.tooling")


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (REPO / "dags").glob("*.py")))
def test_dag_files_parse_without_heavy_imports(dag_file: str):
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        f"heavy = [m for m in {HEAVY_AT_PARSE!r} if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / dag_file)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dag_shape():
    dag = _dag()
    assert dag.schedule == "@daily"
    assert [t.task_id for t in dag.topological_sort()] == ["check_config", "discover", "rights_check", "cost_check",
                                                            "edit", "quality_gate", "escalate", "publish",
                                                            "outcome"]
    assert dag.get_task("check_config").is_setup  # when it fails, nothing downstream runs
    assert {dag.get_task(t).trigger_rule for t in ("quality_gate", "escalate", "publish", "outcome")} == {"all_done"}
    assert dag.params["routing"] is False  # routing is off unless asked for: every image on the connection


def test_catalog_refresh_end_to_end(tmp_path: Path, sample_set):
    images, truth = sample_set
    source = tmp_path / "source"
    shutil.copytree(images, source)
    (source / "corrupt.jpg").write_bytes((images / "photo_coffee.jpg").read_bytes()[:3000])
    (source / "notes.txt").write_text("not an image")

    dagrun, report = _run(tmp_path, source, chunk_size=4, max_failure_rate=1.0)  # a chunk of 4 scene photos

    assert dagrun.state == "success"
    # the astronaut's photo shows a face and carries no model release: it waits for consent, never edited
    assert report["rights"]["waiting_for_consent"] == ["photo_astronaut"]
    assert report["rights"]["counts"]["refused"] == 0
    images = {p.stem for p in source.iterdir() if p.suffix in (".jpg", ".png")} - {"photo_astronaut"}
    total = len(images)
    scenes = {stem for stem in images if stem.startswith("photo_")}  # no backdrop: refused, not guessed
    expected_failures = {"corrupt", "broken_upload"} | scenes
    assert len(scenes) == 3
    counts = report["counts"]
    # every image the source holds is found, the one waiting for consent included (it changed, was not edited)
    assert counts == {"found": total + 1, "changed": total + 1, "unchanged": 0, "refused_before": 0,
                      "waiting_for_consent": 1, "rights_refused": 0,
                      "edited": total - len(expected_failures), "failed": len(expected_failures),
                      "failed_final": len(expected_failures), "failed_retryable": 0, "skipped_budget": 0,
                      "cache_hits": 0, "quarantined": 0, "published": total - len(expected_failures)}
    quality = report["quality"]
    assert quality["profiles"] == ["amazon_main"] and quality["intents"] == ["reframe"]
    assert quality["pass_rate"] == 1.0 and quality["passed"] == total - len(expected_failures)
    for index_uri in quality["data_docs"]:
        assert "Data Docs" in Path(index_uri[len("file://"):]).read_text() or "great_expectations" in \
            Path(index_uri[len("file://"):]).read_text().lower()
    reasons = {f["image_id"]: f["error"] for f in report["failures"]}
    assert set(reasons) == expected_failures
    assert "truncated" in reasons["corrupt"].lower() and "truncated" in reasons["broken_upload"].lower()
    assert all("no plain backdrop" in reasons[stem] for stem in scenes)

    published = {p.stem: p for p in (tmp_path / "published").iterdir()}
    assert set(published) == images - expected_failures
    for entry in report["published"]:
        data = Path(entry["published_uri"][len("file://"):]).read_bytes()
        assert sha256_hex(data) == entry["sha256"] != entry["output_sha256"]  # the published bytes carry XMP
        xmp = read_xmp(data)
        assert xmp["digital_source_type"].endswith("/algorithmicallyEnhanced")  # the local engine: not generative
        assert xmp["source_sha256"] == entry["source_sha256"] and xmp["recipe_name"] == "marketplace_white_square"
    for mask_path in truth.glob("*.png"):
        out = np.asarray(Image.open(published[mask_path.stem]).convert("RGB"))
        assert out.shape == (2000, 2000, 3)  # the marketplace recipe's square canvas
        border = np.concatenate([out[:40].reshape(-1, 3), out[-40:].reshape(-1, 3),
                                 out[:, :40].reshape(-1, 3), out[:, -40:].reshape(-1, 3)])
        assert (border == 255).all(), f"{mask_path.stem}: canvas border is not pure white"
        product = (out < 250).any(axis=2)
        ys, xs = np.nonzero(product)
        fill = max(np.ptp(ys) + 1, np.ptp(xs) + 1) / 2000
        assert 0.80 <= fill <= 0.87, f"{mask_path.stem}: product fills {fill:.2%} of the frame"

    edit_manifests = sorted((tmp_path / "work" / "runs").glob("*/edits/chunk-*.json"))
    assert len(edit_manifests) == -(-(total + 1) // 4)  # one mapped edit task per discovered chunk
    assert Path(report["report_html"][len("file://"):]).read_text().count("<tr class=") == total


def test_empty_source_publishes_nothing_and_reports_it(tmp_path: Path):
    source = tmp_path / "empty"
    source.mkdir()
    dagrun, report = _run(tmp_path, source)
    assert dagrun.state == "success"
    assert report["counts"] == {"found": 0, "changed": 0, "unchanged": 0, "refused_before": 0,
                                "waiting_for_consent": 0, "rights_refused": 0, "edited": 0,
                                "failed": 0, "quarantined": 0, "published": 0,
                                "failed_final": 0, "failed_retryable": 0, "skipped_budget": 0, "cache_hits": 0}


def test_low_pass_rate_fails_the_run_after_quarantining(tmp_path: Path, sample_set):
    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "box_tea.jpg", "can_soda.jpg"))
    strict = write_strict_profile(tmp_path / "strict.yaml")

    dagrun, report = _run(tmp_path, source, quality_profile=str(strict), min_pass_rate=0.5)

    assert dagrun.state == "failed"  # the gate task fails: on_failure alerting fires
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert (states["quality_gate"], states["publish"], states["outcome"]) == ("failed", "success", "failed")
    assert report["outcome"]["status"] == "failed"  # the report is written for the failed run, with why
    [chunk] = report["outcome"]["chunks"]
    assert chunk["status"] == "gate_failed" and chunk["reason"] == "chunk 0: pass rate 0% is below 50% (3 quarantined)"
    assert report["counts"]["published"] == 0 and not (tmp_path / "published").exists()  # none passed
    quarantine = next((tmp_path / "work" / "quarantine").iterdir())
    records = {p.stem: json.loads(p.read_text()) for p in quarantine.glob("*.json")}
    assert set(records) == {"ball_red", "box_tea", "can_soda"}
    for image_id, record in records.items():
        assert (quarantine / f"{image_id}.jpg").exists()
        assert record["failed"][0]["label"] == "0.99 <= product_fill"
        assert 0.84 <= record["failed"][0]["observed"] <= 0.86
        assert record["metrics"]["product_fill"] == record["failed"][0]["observed"]
