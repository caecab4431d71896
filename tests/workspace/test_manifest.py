from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from airflow_image_catalog.workspace.manifest import (
    FINAL_STATUSES,
    ChunkManifest,
    EditManifest,
    EditRecord,
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
