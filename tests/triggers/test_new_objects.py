"""NewObjectsTrigger against moto (s3://, through the fault proxy) and a temp dir (file://)."""
# The S3 fixtures are imported from tests.fixtures.s3 and taken as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_image_catalog.storage import ObjectInfo, join_uri, list_objects, write_bytes, write_json
from airflow_image_catalog.triggers.new_objects import NewObjectsTrigger
from tests.fixtures.s3 import moto_server, s3_bucket, s3_fault_proxy, s3_faults  # noqa: F401

IMAGES = [".jpg", ".png"]


def roundtrip(trigger: NewObjectsTrigger) -> NewObjectsTrigger:
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


def published(objects: list[ObjectInfo]) -> dict:
    """A published manifest holding ``objects`` as they are now."""
    return {"images": {f"img{i}": {"source_uri": o.uri, "source_bytes": o.size, "source_etag": o.etag}
                       for i, o in enumerate(objects)}}


async def first_event(trigger: NewObjectsTrigger, timeout: float = 20) -> dict:
    async def one():
        async for event in trigger.run():
            return event.payload
    return await asyncio.wait_for(one(), timeout)


async def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path: Path) -> str:
    """A workspace root on each backend: sources under ``src/``, the manifest beside them."""
    if request.param == "file":
        return tmp_path.as_uri()
    request.getfixturevalue("s3_faults")  # every S3 request passes the (idle) fault proxy
    return request.getfixturevalue("s3_bucket").uri


def setup_source(root: str, names: dict[str, bytes]) -> tuple[str, str]:
    """Write the source objects, publish them as they are; returns (source, manifest URI)."""
    source = join_uri(root, "src")
    for name, data in names.items():
        write_bytes(join_uri(source, name), data)
    manifest = write_json(join_uri(root, "published.json"), published(list_objects(source)))
    return source, manifest


def test_serialize_round_trips_every_kwarg():
    kwargs = {"source": "s3://b/src", "published_manifest": "s3://b/published.json", "poke_interval": 2.5,
              "deadline": 123.0, "extensions": [".jpg", ".png"], "ignore_prefixes": ["masks/"]}
    assert set(kwargs) == set(inspect.signature(NewObjectsTrigger).parameters)  # every kwarg, none forgotten
    trigger = NewObjectsTrigger(**kwargs)
    again = roundtrip(trigger)
    assert again.serialize() == trigger.serialize()
    assert trigger.serialize() == ("airflow_image_catalog.triggers.new_objects.NewObjectsTrigger", kwargs)
    module, name = trigger.serialize()[0].rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is NewObjectsTrigger  # the literal path imports


async def test_fires_for_an_object_put_after_it_started(root: str):
    source, manifest = setup_source(root, {"a.jpg": b"aaa", "notes.txt": b"n"})
    trigger = roundtrip(NewObjectsTrigger(source, manifest, poke_interval=0.02, deadline=time.time() + 30,
                                          extensions=IMAGES))
    task = asyncio.create_task(first_event(trigger))
    await wait_until(lambda: trigger.polls >= 2)  # two polls saw only published / non-image objects
    assert not task.done()
    new_uri = await asyncio.to_thread(write_bytes, join_uri(source, "sub", "b.png"), b"bbbb")
    event = await task
    assert event == {"status": "success", "count": 1, "uris": [new_uri], "truncated": False}


async def test_published_unchanged_objects_time_out_cleanly(root: str):
    source, manifest = setup_source(root, {"a.jpg": b"aaa", "b.png": b"bb"})
    started = time.monotonic()
    # 1.5 s leaves room for two S3 polls on a loaded machine (one took over 0.4 s at a load of 12 on 2 cores)
    event = await first_event(NewObjectsTrigger(source, manifest, poke_interval=0.05, deadline=time.time() + 1.5))
    assert event["status"] == "timeout" and event["last_error"] is None and event["polls"] >= 2
    assert event["message"] == f"nothing new under {source} by the deadline"
    assert 1.4 < time.monotonic() - started < 10


async def test_a_changed_size_is_new(root: str):
    source, manifest = setup_source(root, {"a.jpg": b"aaa", "b.jpg": b"bb"})
    changed = write_bytes(join_uri(source, "b.jpg"), b"bigger now")
    event = await first_event(NewObjectsTrigger(source, manifest, poke_interval=0.05, deadline=time.time() + 5))
    assert event["status"] == "success" and event["uris"] == [changed]


async def test_a_changed_etag_is_new_on_s3(s3_bucket, s3_faults):
    source, manifest = setup_source(s3_bucket.uri, {"a.jpg": b"aaa", "b.jpg": b"bbb"})
    changed = write_bytes(join_uri(source, "b.jpg"), b"BBB")  # same size, other content
    event = await first_event(NewObjectsTrigger(source, manifest, poke_interval=0.05, deadline=time.time() + 5))
    assert event == {"status": "success", "count": 1, "uris": [changed], "truncated": False}


async def test_a_missing_manifest_makes_everything_new(root: str):
    source, _ = setup_source(root, {"a.jpg": b"a", "b.jpg": b"b"})
    event = await first_event(NewObjectsTrigger(source, join_uri(root, "never-published.json"),
                                                deadline=time.time() + 5))
    assert event["status"] == "success" and event["count"] == 2


async def test_survives_s3_5xx_bursts(s3_bucket, s3_faults):
    source, manifest = setup_source(s3_bucket.uri, {"a.jpg": b"a"})
    new_uri = s3_bucket.put("src/new.jpg", b"new")
    s3_faults.fail("LIST", times=6)  # CATALOG_S3_MAX_ATTEMPTS=3: two whole polls fail after retries
    trigger = NewObjectsTrigger(source, manifest, poke_interval=0.02, deadline=time.time() + 30)
    event = await first_event(trigger)
    assert event == {"status": "success", "count": 1, "uris": [new_uri], "truncated": False}
    assert trigger.polls == 3 and s3_faults.stats()["failed"] == {"LIST": 6}


async def test_persistent_errors_end_in_a_timeout_naming_the_last_error(s3_bucket, s3_faults):
    source, manifest = setup_source(s3_bucket.uri, {"a.jpg": b"a"})
    s3_faults.slow_down("LIST", times=None)
    event = await first_event(NewObjectsTrigger(source, manifest, poke_interval=0.02, deadline=time.time() + 0.5))
    assert event["status"] == "timeout" and event["polls"] >= 1
    assert "SlowDown" in event["last_error"] and source in event["last_error"]


async def test_a_source_folder_that_appears_later(tmp_path: Path):
    source = (tmp_path / "drop").as_uri()
    trigger = NewObjectsTrigger(source, None, poke_interval=0.02, deadline=time.time() + 30)
    task = asyncio.create_task(first_event(trigger))
    await wait_until(lambda: trigger.polls >= 2)  # "does not exist" is transient: polled again
    uri = await asyncio.to_thread(write_bytes, join_uri(source, "first.jpg"), b"1")
    assert (await task) == {"status": "success", "count": 1, "uris": [uri], "truncated": False}


async def test_a_malformed_manifest_is_a_permanent_error(tmp_path: Path):
    source, _ = setup_source(tmp_path.as_uri(), {"a.jpg": b"a"})
    bad = write_json(join_uri(tmp_path.as_uri(), "bad.json"), {"images": [1, 2]})
    event = await first_event(NewObjectsTrigger(source, bad, deadline=time.time() + 5))
    assert event["status"] == "error" and "no 'images' mapping" in event["message"]


async def test_anything_unexpected_is_one_error_event_never_an_exception(tmp_path: Path, monkeypatch):
    source, manifest = setup_source(tmp_path.as_uri(), {"a.jpg": b"a"})
    trigger = NewObjectsTrigger(source, manifest, poke_interval=0.01, deadline=time.time() + 5)

    def broken_find():
        raise PermissionError(13, "Permission denied")  # an OSError the storage layer did not expect

    monkeypatch.setattr(trigger, "_find", broken_find)
    events = [event.payload async for event in trigger.run()]
    assert events == [{"status": "error", "message": f"waiting for new objects under {source} failed: "
                                                     "PermissionError: [Errno 13] Permission denied"}]


async def test_polling_never_blocks_the_event_loop(s3_bucket, s3_faults):
    source, manifest = setup_source(s3_bucket.uri, {"a.jpg": b"a"})
    s3_faults.delay("LIST", 0.4, times=None)  # a slow S3 listing
    gaps: list[float] = []

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticks = asyncio.create_task(ticker())
    event = await first_event(NewObjectsTrigger(source, manifest, poke_interval=0.01, deadline=time.time() + 0.9))
    ticks.cancel()
    assert event["status"] == "timeout" and s3_faults.stats()["delayed"]["LIST"] >= 2
    assert max(gaps) < 0.2, f"the event loop stalled for {max(gaps):.2f}s"
