"""Which feeds a catalog_feed run writes: the newest state of each location, history never fatal."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.feed import PublishEvent, rebuild_feeds
from airflow_image_catalog.storage import StorageError, write_json

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _catalog(root: Path, images: dict[str, str]) -> tuple[str, str]:
    """A published location and its manifest (as publish writes it)."""
    published = (root / "published").as_uri()
    manifest = write_json((root / "work" / "state" / "published_manifest.json").as_uri(), {"images": {
        image_id: {"image_id": image_id, "published_uri": f"{published}/{image_id}.jpg", "sha256": sha,
                   "source_sha256": sha, "width": 10, "height": 10, "run_id": "r1"}
        for image_id, sha in images.items()}})
    return published, manifest


class _Records(logging.Handler):
    """The records of one logger (Airflow's logging setup keeps them from pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _event(location: str, manifest: str, minutes: int) -> PublishEvent:
    return PublishEvent(location, {"published_manifest": manifest}, T0 + timedelta(minutes=minutes))


def test_one_feed_per_location_from_its_newest_event(tmp_path: Path):
    location, manifest = _catalog(tmp_path, {"b": "2" * 64, "a": "1" * 64})
    outcome = rebuild_feeds([_event(location, manifest, 2), _event(location, manifest, 1)], triggered=True)
    assert outcome["written"] == [f"{location}/feed.csv"] and outcome["unchanged"] == [] == outcome["skipped"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "published" / "feed.csv").read_text())))
    assert [r["image_id"] for r in rows] == ["a", "b"]
    again = rebuild_feeds([_event(location, manifest, 3)], triggered=True)
    assert again["written"] == [] and again["unchanged"] == [f"{location}/feed.csv"]


def test_an_unreachable_historical_location_is_skipped_with_a_warning(tmp_path: Path, s3_bucket, monkeypatch):
    """An older run's S3 location whose credentials are gone (or whose workspace was removed) only warns."""
    from tests.fixtures.s3 import point_s3_at

    here, manifest = _catalog(tmp_path / "here", {"a": "1" * 64})
    _, gone_manifest = _catalog(tmp_path / "gone", {"x": "9" * 64})
    (tmp_path / "gone" / "work" / "state" / "published_manifest.json").unlink()
    monkeypatch.setenv("CATALOG_S3_MAX_ATTEMPTS", "1")
    point_s3_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens: the old bucket is out of reach
    events = [_event(s3_bucket.uri_for("published"), s3_bucket.uri_for("work/state/published_manifest.json"), 1),
              _event((tmp_path / "gone" / "published").as_uri(), gone_manifest, 2),
              _event(here, manifest, 3)]
    warnings = _Records()
    logging.getLogger("airflow_image_catalog.pipeline.publishing.feed").addHandler(warnings)
    try:
        outcome = rebuild_feeds(events, triggered=False)
    finally:
        logging.getLogger("airflow_image_catalog.pipeline.publishing.feed").removeHandler(warnings)
    assert outcome["written"] == [f"{here}/feed.csv"]
    assert sorted(s["location"] for s in outcome["skipped"]) == sorted([s3_bucket.uri_for("published"),
                                                                         (tmp_path / "gone" / "published").as_uri()])
    assert sum("skipped (history" in r.getMessage() for r in warnings.records if r.levelname == "WARNING") == 2
    assert any("EndpointConnectionError" in s["reason"] for s in outcome["skipped"])


def test_a_location_this_run_was_triggered_for_fails_loudly(tmp_path: Path):
    """The events that triggered the run are the feed's job now: one it cannot follow fails the task,
    after the other locations were written."""
    here, manifest = _catalog(tmp_path / "here", {"a": "1" * 64})
    missing = (tmp_path / "nowhere" / "published_manifest.json").as_uri()
    with pytest.raises(StorageError, match="1 of 2 published locations"):
        rebuild_feeds([_event((tmp_path / "nowhere").as_uri(), missing, 1), _event(here, manifest, 2)], triggered=True)
    assert (tmp_path / "here" / "published" / "feed.csv").exists()
