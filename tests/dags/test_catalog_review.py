"""Human review through Airflow's real human-in-the-loop path.

``dag.test()`` parks the review task in ``awaiting_input`` exactly as a deployment does;
the test answers the way the Airflow UI / REST API does (same model updates and
``handle_event_submit``), from another thread, and the run resumes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.inline import edit_chunk
from airflow_image_catalog.pipeline.quality.gate import gate_chunk
from airflow_image_catalog.pipeline.quality.profiles import load_profile
from airflow_image_catalog.pipeline.quality.review import REJECT_ALL
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.conftest import REPO, copy_samples, write_strict_profile

pytestmark = pytest.mark.usefixtures("airflow_db")


def _quarantine_everything(tmp_path: Path, sample_set) -> tuple[str, list[str]]:
    """Real edits judged by a profile no image can pass: every edit ends in quarantine."""
    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "can_soda.jpg", "jar_honey.png"))
    strict = write_strict_profile(tmp_path / "impossible.yaml")
    found = discover_images(str(source))
    recipe = load_recipe("marketplace_white_square")
    workspace = str(tmp_path / "work")
    edits = edit_chunk(ChunkManifest("run1", 0, found.source_root, found.items), recipe, LocalEngineBackend(),
                       run_root=f"{workspace}/runs/run1")
    gate = gate_chunk(edits, recipe, load_profile(str(strict)), source_root=found.source_root,
                      quarantine_root=f"{workspace}/quarantine/run1", docs_root=None, ocr=False)
    assert gate["counts"]["quarantined"] == 3
    return workspace, [item["image_id"] for item in gate["items"]]


def _answer_when_asked(dag_id: str, chosen: list[str], params: dict, errors: list, deadline_s: float = 300):
    """Play the reviewer: wait for the parked task, then respond as the Core API does; return once it finished.

    Like a person, the reviewer answers a task that has been waiting a moment, not the instant
    it parks: on SQLite (no row locks) an answer racing the worker's park transition can be
    overwritten by it, leaving the task parked with its answer recorded. Should that happen
    anyway, the recorded answer is handed to the task again. Errors from SQLite contention
    with the run in the main thread are retried. If no answer gets through by the deadline,
    the reviewer rejects all so the run ends and the test fails on ``errors`` instead of hanging.
    """
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import State, TaskInstanceState
    from sqlalchemy import select

    parked_since: dict[str, float] = {}
    with create_session() as session:  # finished review tasks of earlier runs in this metadata DB are not ours
        earlier = set(session.scalars(select(TaskInstance.id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.state.in_(State.finished))))

    def step(answer: list[str], answer_params: dict) -> bool:
        """One look at the run; True once the review task has finished."""
        with create_session() as session:
            ti = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.id.not_in(earlier))).first()
            if ti is not None and ti.state in State.finished:
                return True
            detail = session.get(HITLDetail, ti.id) if ti is not None else None
            if detail is None or ti.state != TaskInstanceState.AWAITING_INPUT:
                return False
            if time.monotonic() - parked_since.setdefault(ti.id, time.monotonic()) < 2:
                return False
            if not detail.response_received:
                detail.responded_by = {"id": "7", "name": "reviewer@example.com"}
                detail.responded_at = datetime.now(UTC)
                detail.chosen_options = answer
                detail.params_input = answer_params
            handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)
            return False

    deadline = time.monotonic() + deadline_s
    last_error = "the review task never finished"
    while time.monotonic() < deadline:
        try:
            if step(chosen, params):
                return
        except Exception as exc:  # retried: SQLite contention with the run in the main thread
            last_error = repr(exc)
        time.sleep(0.5)
    errors.append(last_error)
    for _ in range(60):  # unpark the run so the test reports instead of hanging
        try:
            if step([REJECT_ALL], {"approve_ids": "", "note": ""}):
                return
        except Exception:
            pass
        time.sleep(0.5)


def _review_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "catalog_review.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["catalog_review"]


def _warm_up_orm() -> None:
    """Import and configure Airflow's ORM in this thread first: concurrent first imports deadlock.

    Everything the reviewer thread imports is imported here, so that thread only looks modules up.
    """
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit  # noqa: F401
    from airflow.triggers.base import TriggerEvent  # noqa: F401
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState  # noqa: F401
    from sqlalchemy import select

    with create_session() as session:
        session.scalars(select(TaskInstance).limit(1)).first()
        session.scalars(select(HITLDetail).limit(1)).first()


def test_reviewer_approves_a_listed_subset(tmp_path: Path, sample_set):
    workspace, ids = _quarantine_everything(tmp_path, sample_set)
    published = tmp_path / "published"
    dag = _review_dag()
    _warm_up_orm()
    errors: list = []
    responder = threading.Thread(target=_answer_when_asked, args=(
        "catalog_review", ["Approve listed, reject the rest"], {"approve_ids": ids[0], "note": "label is fine"},
        errors), daemon=True)
    responder.start()
    dagrun = dag.test(run_conf={"workspace": workspace, "published": str(published)})
    responder.join()
    assert not errors, errors
    assert dagrun.state == "success"

    assert sorted(p.stem for p in published.iterdir()) == [ids[0]]
    records = {p.stem: json.loads(p.read_text()) for p in Path(workspace, "quarantine", "run1").glob("*.json")}
    assert records[ids[0]]["review"]["decision"] == "approved"
    assert records[ids[0]]["review"]["by"] == "reviewer@example.com"
    assert records[ids[0]]["review"]["note"] == "label is fine"
    assert {records[i]["review"]["decision"] for i in ids[1:]} == {"rejected"}
    state = json.loads(Path(workspace, "state", "published_manifest.json").read_text())
    assert set(state["images"]) == {ids[0]}
    from airflow_image_catalog.pipeline.publishing.audit import (
        open_audit,  # every decision joined the audit trail
    )

    rows = open_audit(workspace).execute("SELECT image_id, event, reviewer FROM audit WHERE event IN "
                                         "('approved', 'rejected') ORDER BY image_id").fetchall()
    assert {(image_id, event) for image_id, event, _ in rows} == {
        (ids[0], "approved"), *((i, "rejected") for i in ids[1:])}
    assert {reviewer for *_, reviewer in rows} == {"reviewer@example.com"}
    published_sha = open_audit(workspace).execute(
        "SELECT published_sha256 FROM audit WHERE event = 'approved'").fetchone()[0]
    assert published_sha == hashlib.sha256(next(published.iterdir()).read_bytes()).hexdigest()

    # nothing left to review: the next run skips instead of asking
    assert dag.test(run_conf={"workspace": workspace, "published": str(published)}).state == "success"
