"""NewImagesSensor: change detection (pure), poke on s3:// and file://, deferral and its completion."""
# The S3 fixtures are imported from tests.fixtures.s3 and taken as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_image_catalog.pipeline.discovery.changes import (
    new_or_changed,
    published_sources,
    select,
    summary,
)
from airflow_image_catalog.sensors.new_images import NewImagesSensor
from airflow_image_catalog.storage import ObjectInfo, join_uri, list_objects, write_bytes, write_json
from airflow_image_catalog.triggers.new_objects import NewObjectsTrigger
from tests.fixtures.s3 import moto_server, s3_bucket, s3_fault_proxy, s3_faults  # noqa: F401


def entry(uri: str, size: int | None = None, etag: str | None = None) -> dict:
    item = {"source_uri": uri, "image_id": uri.rsplit("/", 1)[-1]}
    if size is not None:
        item["source_bytes"] = size
    if etag is not None:
        item["source_etag"] = etag
    return item


def manifest_of(*entries: dict) -> dict:
    return {"images": {f"i{n}": e for n, e in enumerate(entries)}}


# -- the pure comparison -------------------------------------------------------------------------
def test_new_changed_and_unchanged():
    listing = [ObjectInfo("s3://b/new.jpg", 5, "e1"), ObjectInfo("s3://b/same.jpg", 3, "e2"),
               ObjectInfo("s3://b/bigger.jpg", 9, "e3"), ObjectInfo("s3://b/edited.jpg", 4, "new-etag"),
               ObjectInfo("s3://b/no-etag-published.jpg", 4, "e5"), ObjectInfo("file:///x/local.jpg", 4)]
    published = manifest_of(entry("s3://b/same.jpg", 3, '"e2"'), entry("s3://b/bigger.jpg", 3, "e3"),
                            entry("s3://b/edited.jpg", 4, "old-etag"), entry("s3://b/no-etag-published.jpg", 4),
                            entry("file:///x/local.jpg", 4, "ignored-without-a-listed-etag"))
    assert [o.uri for o in new_or_changed(listing, published)] == [
        "s3://b/new.jpg", "s3://b/bigger.jpg", "s3://b/edited.jpg"]
    assert new_or_changed(listing, None) == listing
    assert new_or_changed(listing, {"images": {}}) == listing


def test_malformed_manifests_are_errors():
    for bad in ({"images": []}, {"other": 1}, {"images": {"a": {"source_bytes": 1}}}, ["x"]):
        with pytest.raises(ValueError):
            published_sources(bad)


def test_only_images_outside_masks_count(tmp_path: Path):
    root = tmp_path.as_uri()
    listing = [ObjectInfo(join_uri(root, n), 1) for n in ("a.JPG", "masks/a.png", "sub/masks/b.png", "n.txt")]
    listing.append(ObjectInfo((tmp_path / "my photo.webp").as_uri(), 1))  # %-encoded by as_uri
    kept = select(listing, root, [".jpg", ".png", ".webp"], ["masks/"])
    assert [o.uri.rsplit("/", 1)[-1] for o in kept] == ["a.JPG", "b.png", "my%20photo.webp"]


def test_summary_caps_the_uris_but_not_the_count():
    found = [ObjectInfo(f"s3://b/{i:04d}.jpg", 1) for i in range(150)]
    report = summary(found)
    assert report["count"] == 150 and len(report["uris"]) == 100 and report["truncated"]
    assert report["uris"][0] == "s3://b/0000.jpg"


# -- poke ------------------------------------------------------------------------------------------
@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path: Path) -> str:
    if request.param == "file":
        return tmp_path.as_uri()
    return request.getfixturevalue("s3_bucket").uri


def sensor(root: str, **kwargs) -> NewImagesSensor:
    return NewImagesSensor(task_id="wait_for_images", source=join_uri(root, "photos"),
                           published_manifest=join_uri(root, "catalog", "published.json"), **kwargs)


def publish_current(root: str) -> None:
    """Publish every image under photos/ as it is now."""
    objects = list_objects(join_uri(root, "photos"))
    write_json(join_uri(root, "catalog", "published.json"),
               manifest_of(*(entry(o.uri, o.size, o.etag) for o in objects)))


def test_poke_is_false_until_a_new_image_arrives(root: str):
    for name in ("mug.jpg", "lamp.png", "masks/mug.png", "readme.txt"):
        write_bytes(join_uri(root, "photos", name), name.encode())
    publish_current(root)
    wait = sensor(root)
    assert wait.poke({}) is False
    write_bytes(join_uri(root, "photos", "masks", "lamp.png"), b"mask")  # not a product image
    write_bytes(join_uri(root, "photos", "notes.txt"), b"n")
    assert wait.poke({}) is False
    new = write_bytes(join_uri(root, "photos", "chair.webp"), b"chair")
    done = wait.poke({})
    assert done.is_done and done.xcom_value == {"count": 1, "uris": [new], "truncated": False}


def test_first_run_without_a_manifest_sees_everything(root: str):
    for name in ("a.jpg", "b.jpg"):
        write_bytes(join_uri(root, "photos", name), b"x")
    assert sensor(root).poke({}).xcom_value["count"] == 2


def test_storage_errors_while_poking_mean_not_yet(tmp_path: Path, s3_bucket, s3_faults):
    assert sensor(tmp_path.as_uri()).poke({}) is False  # the drop folder does not exist yet
    s3_bucket.put("photos/a.jpg")
    s3_faults.fail("LIST", times=None)
    assert sensor(s3_bucket.uri).poke({}) is False
    s3_faults.reset()
    assert sensor(s3_bucket.uri).poke({}).is_done


def test_a_failing_manifest_check_never_makes_the_catalog_look_new(s3_bucket, s3_faults):
    s3_bucket.put("photos/a.jpg")
    publish_current(s3_bucket.uri)
    s3_faults.fail("HEAD", times=None)  # exists() of the manifest fails: not "missing"
    assert sensor(s3_bucket.uri).poke({}) is False


def test_sync_execute_returns_the_report_or_times_out(tmp_path: Path):
    root = tmp_path.as_uri()
    write_bytes(join_uri(root, "photos", "a.jpg"), b"a")
    publish_current(root)
    with pytest.raises(AirflowSensorTimeout):
        sensor(root, poke_interval=0.01, timeout=0.1, deferrable=False).execute({})
    new = write_bytes(join_uri(root, "photos", "b.jpg"), b"b")
    assert sensor(root, poke_interval=0.01, timeout=5, deferrable=False).execute({})["uris"] == [new]


# -- deferrable ------------------------------------------------------------------------------------
def test_defers_to_the_trigger_and_completes_with_its_event(root: str):
    write_bytes(join_uri(root, "photos", "a.jpg"), b"a")
    publish_current(root)
    wait = sensor(root, deferrable=True, poke_interval=0.02, timeout=60)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, NewObjectsTrigger) and deferred.value.method_name == "execute_complete"
    kwargs = trigger.serialize()[1]
    assert kwargs["source"] == join_uri(root, "photos")
    assert kwargs["published_manifest"] == join_uri(root, "catalog", "published.json")
    assert kwargs["poke_interval"] == 0.02 and before + 60 <= kwargs["deadline"] <= time.time() + 60
    assert ".jpg" in kwargs["extensions"] and kwargs["ignore_prefixes"] == ["masks/"]

    new = write_bytes(join_uri(root, "photos", "b.jpg"), b"b")
    event = asyncio.run(_first_event(trigger))
    assert wait.execute_complete({}, event) == {"count": 1, "uris": [new], "truncated": False}


async def _first_event(trigger: NewObjectsTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def test_does_not_defer_when_new_images_are_already_there(tmp_path: Path):
    new = write_bytes(join_uri(tmp_path.as_uri(), "photos", "a.jpg"), b"a")
    assert sensor(tmp_path.as_uri(), deferrable=True).execute({}) == {"count": 1, "uris": [new], "truncated": False}


def test_execute_complete_fails_clearly(tmp_path: Path):
    wait = sensor(tmp_path.as_uri(), deferrable=True, timeout=30)
    with pytest.raises(AirflowSensorTimeout, match=r"within 30s \(last error: boom\)"):
        wait.execute_complete({}, {"status": "timeout", "last_error": "boom", "polls": 3})
    with pytest.raises(AirflowSkipException):
        sensor(tmp_path.as_uri(), soft_fail=True).execute_complete({}, {"status": "timeout", "last_error": None})
    with pytest.raises(AirflowException, match=r"NewObjectsTrigger on .*photos error: x.json: no 'images' mapping"):
        wait.execute_complete({}, {"status": "error", "message": "x.json: no 'images' mapping"})
    with pytest.raises(AirflowException, match="resumed without an event"):
        wait.execute_complete({}, None)
    with pytest.raises(AirflowException, match="unexpected event status 'found'"):  # an older triggerer's event
        wait.execute_complete({}, {"status": "found", "count": 1, "uris": [], "truncated": False})


def test_templated_fields_and_provider_registration():
    from airflow_image_catalog import get_provider_info

    assert tuple(NewImagesSensor.template_fields) == ("source", "published_manifest")
    info = get_provider_info()
    assert any("airflow_image_catalog.sensors.new_images" in s["python-modules"] for s in info["sensors"])
    assert any("airflow_image_catalog.triggers.new_objects" in t["python-modules"] for t in info["triggers"])
