"""The publish task's asset event and the example downstream DAG that consumes it."""

from __future__ import annotations

import csv
import io
import os
import shutil

import pytest

from tests.conftest import REPO, copy_samples

pytestmark = pytest.mark.usefixtures("airflow_db")


def _rows(path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_publish_emits_an_asset_event_and_the_feed_dag_consumes_it(tmp_path, sample_set):
    """Two catalogs publish; the feed follows each; a location removed between feed runs is warned
    about and skipped, never a failure, and a feed whose catalog did not change is not rewritten."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    assert bag.dags["catalog_feed"].is_paused_upon_creation is False  # it runs on the stack as deployed
    first, second = tmp_path / "first", tmp_path / "second"
    for root, names in ((first, ("ball_red.png", "can_soda.jpg")), (second, ("box_tea.jpg",))):
        conf = {"source": str(copy_samples(sample_set, root / "source", names)), "workspace": str(root / "work"),
                "published": str(root / "published")}
        assert bag.dags["catalog_refresh"].test(run_conf=conf).state == "success"
        if root is first:
            with create_session() as session:
                events = [e for e in session.query(AssetEvent).all() if e.asset.uri == (root / "published").as_uri()]
                assert len(events) == 1
                event = events[0]
                assert event.extra["published"] == 2 and event.extra["published_manifest"].endswith(
                    "state/published_manifest.json")
                assert {alias.name for alias in event.source_aliases} == {"catalog-published"}
            assert bag.dags["catalog_feed"].test().state == "success"
            feed = first / "published" / "feed.csv"
            assert [r["image_id"] for r in _rows(feed)] == ["ball_red", "can_soda"]
            assert all(r["published_uri"].startswith((first / "published").as_uri()) and len(r["sha256"]) == 64
                       for r in _rows(feed))
            assert (feed.stat().st_mode & 0o777) == 0o666 & ~_umask()  # a web server may read it
            written_at = feed.stat().st_mtime_ns
            shutil.rmtree(first / "work")  # the first catalog's workspace is gone: its event is history

    feed_run = bag.dags["catalog_feed"].test()
    assert feed_run.state == "success"
    assert [r["image_id"] for r in _rows(second / "published" / "feed.csv")] == ["box_tea"]
    assert (first / "published" / "feed.csv").stat().st_mtime_ns == written_at  # not rewritten
    outcome = _ours(feed_run.get_task_instance("write_feed").xcom_pull(task_ids="write_feed"), tmp_path)
    assert outcome["written"] == [(second / "published" / "feed.csv").as_uri()]
    assert [s["location"] for s in outcome["skipped"]] == [(first / "published").as_uri()]
    assert str(first / "work") in outcome["skipped"][0]["reason"]

    again = bag.dags["catalog_feed"].test()  # nothing new: nothing rewritten
    assert again.state == "success"
    outcome = _ours(again.get_task_instance("write_feed").xcom_pull(task_ids="write_feed"), tmp_path)
    assert outcome["written"] == [] and outcome["unchanged"] == [(second / "published" / "feed.csv").as_uri()]


def _ours(outcome: dict, root) -> dict:
    """The part of a feed run's outcome about this test's locations: the test database is shared, so the
    alias's history also holds the publishes of earlier tests (a run by hand follows all of them)."""
    mine = root.as_uri()
    return {"written": [u for u in outcome["written"] if u.startswith(mine)],
            "unchanged": [u for u in outcome["unchanged"] if u.startswith(mine)],
            "skipped": [s for s in outcome["skipped"] if s["location"].startswith(mine)]}

def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
