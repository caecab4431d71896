"""A forced failure in a real DAG run alerts a local receiver; the deadline alert is declared,
recorded for a run, and its callback delivers when Airflow's own triggerer path runs it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_image_catalog.notifications.catalog import deadline_missed, nightly_deadline
from airflow_image_catalog.tooling.service.server import LoopbackServer

pytestmark = pytest.mark.usefixtures("airflow_db")


PROBE_DAGS = Path(__file__).parent / "dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """The probe DAGs, parsed for one receiver and workspace, in a bundle of their own (``dag.test()``
    runs only DAGs it finds in a configured bundle). Module-scoped: the serialized DAGs in the
    metadata DB then keep pointing at this receiver."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.notifications.conftest import Receiver

    workspace = tmp_path_factory.mktemp("alerts") / "work"
    app = Receiver()
    with LoopbackServer(app) as server, pytest.MonkeyPatch.context() as env:
        app.url = server.url
        env.setenv("CATALOG_ALERT_TEST_URL", server.url)
        env.setenv("CATALOG_ALERT_TEST_WORKSPACE", str(workspace))
        env.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([
            {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
            {"name": "notification-probes", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(PROBE_DAGS)}},
        ]))
        bag = DagBag(dag_folder=str(PROBE_DAGS))
        assert not bag.import_errors, bag.import_errors
        yield bag.dags, app, workspace


def test_forced_failure_delivers_an_alert(probe):
    dags, receiver, workspace = probe
    receiver.requests.clear()
    dagrun = dags["alerting_forced_failure"].test()

    assert dagrun.state == "failed"
    receiver.wait_for(1)
    alert = receiver.json()
    assert receiver.requests[0]["path"] == "/alerts"
    assert alert["kind"] == "task_failure"
    assert alert["fields"]["dag_id"] == "alerting_forced_failure" and alert["fields"]["task_id"] == "edit"
    assert alert["fields"]["run_id"] == dagrun.run_id and alert["fields"]["try_number"] == 1
    assert "RuntimeError: backend refused the edit" in alert["fields"]["what_failed"]
    assert "bfl-0123456789" not in receiver.requests[0]["body"].decode()
    assert alert["links"]["report"].startswith(f"file://{workspace}/runs/") and alert["links"]["task_log"]


def test_nightly_deadline_is_well_formed():
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    alert = nightly_deadline(6, webhook_conn_id="alerts_webhook", to="ops@example.com")
    assert isinstance(alert, DeadlineAlert) and alert.interval == timedelta(hours=6)
    assert alert.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    queued = nightly_deadline(2, reference=DeadlineReference.DAGRUN_QUEUED_AT)
    assert queued.reference == DeadlineReference.DAGRUN_QUEUED_AT and queued.callback.kwargs == {}
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "airflow_image_catalog.notifications.catalog.deadline_missed"
    assert alert.callback.kwargs == {"webhook_conn_id": "alerts_webhook", "to": "ops@example.com"}
    with pytest.raises(ValueError):
        nightly_deadline(0)


def test_missed_deadline_delivers_through_the_triggerer_callback(probe):
    """dag.test() records the run's Deadline row but runs no scheduler loop or triggerer, so nothing
    fires by itself: the test does the scheduler's step (``Deadline.handle_miss``) and runs the
    queued callback with Airflow's ``CallbackTrigger``, as the triggerer would."""
    from airflow.models.deadline import Deadline
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dags, receiver, _ = probe
    receiver.requests.clear()
    dagrun = dags["alerting_deadline"].test()
    receiver.wait_for(1)  # the failure alert

    with create_session() as session:
        rows = session.scalars(select(Deadline).where(Deadline.dagrun_id == dagrun.id)).all()
        assert len(rows) == 1, "the run's deadline was not recorded"
        row = rows[0]
        assert not row.missed
        assert row.deadline_time - dagrun.logical_date == timedelta(hours=6)
        row.handle_miss(session)  # what the scheduler does once deadline_time has passed
        data = dict(row.callback.data)

    trigger = CallbackTrigger(callback_path=data["path"], callback_kwargs=data["kwargs"])

    async def run() -> list:
        return [event async for event in trigger.run()]

    events = asyncio.run(run())
    assert events[-1].payload["state"] == "success", events[-1].payload
    receiver.wait_for(2)
    alert = receiver.json()
    assert receiver.requests[-1]["path"] == "/late"
    assert alert["kind"] == "deadline_missed" and alert["fields"]["run_id"] == dagrun.run_id
    assert "not done by its deadline" in alert["text"]


def test_deadline_callback_without_channels_only_logs():
    context = {"dag_run": {"dag_id": "catalog_refresh", "dag_run_id": "r1"}, "deadline": {}}
    assert asyncio.run(deadline_missed(context=context)) == "{}"  # text: the callback.output column
