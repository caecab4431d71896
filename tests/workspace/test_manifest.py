from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_image_catalog.workspace.manifest import (
    FINAL_STATUSES,
    ChunkManifest,
    EditManifest,
    EditRecord,
    ImageStatus,
    SourceItem,
    image_id_for,
    safe_run_key,
)

SAFE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def test_image_ids_are_readable():
    assert image_id_for("mug.jpg") == "mug"
    assert image_id_for("shoes/red shoe.PNG") == "shoes/red_shoe"
    assert image_id_for("../../etc/passwd") == "etc/passwd"
    assert image_id_for("/abs/.hidden.jpg") == "abs/hidden"


@given(st.text(max_size=300))
def test_hostile_keys_never_escape(key):
    image_id = image_id_for(key)
    assert SAFE.match(image_id), image_id
    assert ".." not in image_id.split("/") and not image_id.startswith((".", "/"))


def test_run_keys_are_storage_safe():
    assert safe_run_key("manual__2026-11-26T17:00:00+00:00") == "manual__2026-11-26T17_00_00_00_00"


items = st.builds(SourceItem, st.text(max_size=20), st.text(max_size=40), st.text("0123456789abcdef"), st.integers(0))


@given(st.lists(items, max_size=5), st.integers(0, 1023))
def test_chunk_manifest_round_trip(chunk_items, index):
    manifest = ChunkManifest("run", index, "file:///src", chunk_items)
    assert ChunkManifest.from_dict(manifest.to_dict()) == manifest


@given(st.lists(st.sampled_from(FINAL_STATUSES), max_size=8))
def test_edit_manifest_round_trip_and_counts(statuses):
    records = [EditRecord(f"img{i}", "file:///s", "0" * 64, status) for i, status in enumerate(statuses)]
    manifest = EditManifest("run", 0, {"name": "r"}, "local", "local-engine/0", records)
    data = manifest.to_dict()
    assert data["counts"] == {status: statuses.count(status) for status in FINAL_STATUSES}
    assert EditManifest.from_dict(data) == manifest


def test_statuses_are_written_as_the_plain_strings_earlier_manifests_hold():
    """Manifests, state files and reports written before the enum must read back, and new ones read the same."""
    record = EditRecord("a", "file:///s/a.jpg", "0" * 64, ImageStatus.FAILED_FINAL)
    manifest = EditManifest("run", 0, {"name": "r"}, "local", "local-engine/0", [record])
    text = json.dumps(manifest.to_dict(), sort_keys=True)
    assert '"status": "failed_final"' in text and '"failed_final": 1' in text and "ImageStatus" not in text
    loaded = EditManifest.from_dict(json.loads(text))
    assert loaded.items[0].status is ImageStatus.FAILED_FINAL and loaded.items[0].done
    assert [s.value for s in ImageStatus] == ["pending", "submitted", "edited", "failed_retryable", "failed_final",
                                              "skipped_budget"]


def test_an_unknown_status_is_refused_by_name():
    with pytest.raises(ValueError, match="'finished'"):
        EditRecord("a", "file:///s/a.jpg", "0" * 64, "finished")
