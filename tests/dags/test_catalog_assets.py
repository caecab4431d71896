"""The publish task's asset event and the example downstream DAG that consumes it."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import REPO, copy_samples

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_publish_emits_an_asset_event_and_the_feed_dag_consumes_it(tmp_path, sample_set):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "can_soda.jpg"))
    published = tmp_path / "published"
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    conf = {"source": str(source), "workspace": str(tmp_path / "work"), "published": str(published)}

    assert bag.dags["catalog_refresh"].test(run_conf=conf).state == "success"

    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.asset.uri == published.as_uri()]
        assert len(events) == 1
        event = events[0]
        assert event.extra["published"] == 2 and event.extra["published_manifest"].endswith(
            "state/published_manifest.json")
        assert {alias.name for alias in event.source_aliases} == {"catalog-published"}

    feed_run = bag.dags["catalog_feed"].test()
    assert feed_run.state == "success"
    rows = list(csv.DictReader(io.StringIO((published / "feed.csv").read_text())))
    assert [r["image_id"] for r in rows] == ["ball_red", "can_soda"]
    assert all(r["published_uri"].startswith(published.as_uri()) and len(r["sha256"]) == 64 for r in rows)
