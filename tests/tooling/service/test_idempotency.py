"""Idempotency keys on the local edit service: count what was performed, not what was asked."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from airflow_image_catalog.tooling.service.server import stats
from tests.fixtures.service import product_png, wait_until


def test_same_key_replays_the_stored_answer(service, edit):
    first, second = edit(key="k-1"), edit(key="k-1")
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["x-request-id"] == first.headers["x-request-id"]
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert "x-ratelimit-remaining-requests" in second.headers
    numbers = stats(service.url)
    assert (numbers["performed"], numbers["replayed"], numbers["duplicates"]) == (1, 1, 0)
    assert numbers["served"]["POST /v1/images/edits"] == 2  # both were served; one was paid
    assert numbers["performed_by_kind"] == {"images.edit": 1}


def test_a_duplicate_sent_while_the_original_is_in_flight_waits_and_replays(service, edit):
    service.state.faults.add(kind="latency", seconds=0.4, path="/v1/images/edits")
    with ThreadPoolExecutor(2) as pool:
        original = pool.submit(edit, key="k-2")
        wait_until(lambda: service.state.requests() >= 1)
        duplicate = pool.submit(edit, key="k-2")
        first, second = original.result(), duplicate.result()
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert (service.stats()["performed"], service.stats()["replayed"]) == (1, 1)


def test_errors_are_not_stored_so_a_retry_runs(service, edit):
    service.state.faults.add(kind="status", status=500, path="/v1/images/edits")
    failed, retried, replayed = edit(key="k-3"), edit(key="k-3"), edit(key="k-3")
    assert failed.status_code == 500 and retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers and replayed.headers["idempotent-replayed"] == "true"
    assert (service.stats()["performed"], service.stats()["replayed"]) == (1, 1)


def test_different_keys_pay_twice_and_duplicates_count_it(service, edit):
    assert edit(key="a").status_code == edit(key="b").status_code == 200
    assert edit(key="c", prompt="Brighten the photo.").status_code == 200  # other work: not a duplicate
    numbers = service.stats()
    assert (numbers["performed"], numbers["replayed"], numbers["duplicates"]) == (3, 0, 1)
    assert service.state.performed_by_image() == {hashlib.sha256(product_png()).hexdigest(): 3}
    assert [entry["idempotency_key"] for entry in service.state.performed] == ["a", "b", "c"]


def test_keys_expire_and_stored_answers_are_bounded(service, edit):
    service.state.idempotency_max_entries = 2
    for key in ("old", "mid", "new"):
        edit(key=key)
    assert "idempotent-replayed" not in edit(key="old").headers  # evicted (least recently used): runs again
    assert edit(key="new").headers["idempotent-replayed"] == "true"
    service.state.idempotency_ttl_s = 0.0
    edit(key="short")
    assert "idempotent-replayed" not in edit(key="short").headers  # expired at once
    assert service.stats()["performed"] == 6


def test_keys_are_scoped_by_path_and_never_replayed_to_a_wrong_api_key(service, edit, bfl_submit):
    service.state.api_key = "bfl-key"
    assert edit(key="k-4", headers={"Authorization": "Bearer bfl-key"}).status_code == 200
    assert edit(key="k-4", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert bfl_submit(key="k-4").status_code == 200  # same key, other path: its own request
    assert (service.stats()["performed"], service.stats()["replayed"]) == (2, 0)


def test_bfl_submit_with_the_same_key_returns_the_same_job(service, bfl_submit):
    first, second = bfl_submit(key="job-1"), bfl_submit(key="job-1")
    assert first.json()["id"] == second.json()["id"] and second.headers["idempotent-replayed"] == "true"
    assert len(service.state.jobs) == 1
    assert bfl_submit(key="job-2").json()["id"] != first.json()["id"]
    numbers = service.stats()
    assert numbers["performed_by_kind"] == {"bfl.submit": 2} and numbers["duplicates"] == 1
    assert numbers["replayed"] == 1
