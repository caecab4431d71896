"""A photo with a person and no release waits for consent; a reviewer gives it through Airflow's real
human-in-the-loop path (catalog_consent); the next catalog_refresh publishes it, every step in the audit."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.audit.store import open_audit, query
from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.conftest import REPO, copy_samples
from tests.dags.test_catalog_refresh import _run
from tests.dags.test_catalog_review import _answer_when_asked, _warm_up_orm

pytestmark = pytest.mark.usefixtures("airflow_db")


def _consent_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "catalog_consent.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["catalog_consent"]


def test_a_person_waits_for_consent_and_is_published_after_approval(tmp_path: Path, sample_set):
    # a recipe that needs no cut-out, so the scene with a person can be edited once consent is given
    source = copy_samples(sample_set, tmp_path / "source", ("photo_astronaut.jpg", "ball_red.png"))
    workspace = str(tmp_path / "work")

    dagrun, report = _run(tmp_path, source, recipe="campaign_style_look")

    assert dagrun.state == "success"
    assert report["rights"]["waiting_for_consent"] == ["photo_astronaut"]
    assert {p.stem for p in (tmp_path / "published").iterdir()} == {"ball_red"}

    dag = _consent_dag()
    _warm_up_orm()
    errors: list = []
    reviewer = threading.Thread(target=_answer_when_asked, args=(
        "catalog_consent", ["Approve all"], {"approve_ids": "", "note": "model release MR-42 on file"}, errors),
        daemon=True)
    reviewer.start()
    consent_run = dag.test(run_conf={"workspace": workspace})
    reviewer.join()
    assert not errors, errors
    assert consent_run.state == "success"

    dagrun, _ = _run(tmp_path, source, recipe="campaign_style_look")

    assert dagrun.state == "success"
    report = json.loads((tmp_path / "work" / "runs" / safe_run_key(dagrun.run_id) / "report.json").read_text())
    assert report["rights"]["counts"] == {"go": 1, "needs_consent": 0, "refused": 0}
    assert [p["image_id"] for p in report["published"]] == ["photo_astronaut"]
    rows = query(open_audit(workspace), "SELECT event, rights_decision, rights_reasons, consent_decision, "
                                        "consent_by, consent_note, people_faces FROM audit "
                                        "WHERE image_id = 'photo_astronaut' ORDER BY recorded_at")
    assert [r["event"] for r in rows] == ["consent_requested", "consent_granted", "published"]
    requested, granted, published = rows
    assert requested["rights_reasons"] == ["no_rights_metadata", "no_model_release"] and requested["people_faces"] == 1
    assert granted["consent_decision"] == published["consent_decision"] == "approved"
    assert granted["consent_by"] == published["consent_by"] == "reviewer@example.com"
    assert published["consent_note"] == "model release MR-42 on file"
    assert published["rights_decision"] == "go" and published["rights_reasons"][-1] == "consent_granted"

    # nothing waits any more: the consent DAG skips instead of asking
    assert dag.test(run_conf={"workspace": workspace}).state == "success"
