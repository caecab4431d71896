"""Durable per-image chunk state: absent = pending; the last write wins; a fresh chunk costs one check."""

from __future__ import annotations

from pathlib import Path

from airflow_image_catalog.workspace.manifest import EditRecord
from airflow_image_catalog.workspace.state import ChunkState


def test_fresh_chunk_has_no_state_and_records_round_trip(tmp_path: Path):
    state = ChunkState(str(tmp_path / "run"), 3)
    assert state.load() == {}
    state.start()
    record = EditRecord("shoes/red", "file:///src/shoes/red.jpg", "a" * 64, "submitted", job_id="job-1")
    state.save(record, pending_job={"step": 0, "job": {"id": "job-1"}})
    loaded = state.load()
    assert set(loaded) == {"shoes/red"}
    assert ChunkState.record_of(loaded["shoes/red"]) == record
    assert loaded["shoes/red"]["pending_job"]["job"]["id"] == "job-1"
    record.status = "edited"
    state.save(record)
    again = state.load()["shoes/red"]
    assert again["record"]["status"] == "edited" and again["pending_job"] is None
    assert (tmp_path / "run" / "state" / "chunk-00003" / "shoes" / "red.json").exists()


def test_state_written_before_start_marker_is_ignored_only_when_unmarked(tmp_path: Path):
    state = ChunkState(str(tmp_path / "run"), 0)
    state.start()
    state.save(EditRecord("a", "file:///a", "0" * 64, "failed_retryable"))
    assert ChunkState(str(tmp_path / "run"), 0).load()["a"]["record"]["status"] == "failed_retryable"
    assert ChunkState(str(tmp_path / "run"), 1).load() == {}
