"""No silent double charges: an attempt whose answer was lost after its body was sent is booked as possibly billed.

The local edit service stands in for a provider; with ``honour_idempotency`` off it ignores
``Idempotency-Key`` as the real image APIs may (none documents it for edits), so a retry after a
lost answer really is paid twice at the service, and the ledger must show it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from airflow_image_catalog.backends.http import HttpSettings, HttpTransport, Request, idempotency_scope
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.notifications.summary import alert_summary
from airflow_image_catalog.pipeline.costing.ledger import Ledger, cost_summary, possibly_billed_calls
from airflow_image_catalog.pipeline.discovery.discover import discover_images
from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
from airflow_image_catalog.pipeline.editing.inline import aedit_chunk
from airflow_image_catalog.pipeline.publishing.report import cost_section
from airflow_image_catalog.recipes import parse_recipe
from airflow_image_catalog.workspace.manifest import ChunkManifest
from tests.dags.test_reruns import RECIPE
from tests.fixtures.service import product_png

EDITS = "/v1/images/edits"
FAST = {"max_attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.02, "backoff_jitter": 0.0}


def _run(tmp_path: Path, service, monkeypatch, images: int = 2, **extra) -> tuple[ChunkRun, Ledger]:
    source = tmp_path / "source"
    source.mkdir()
    for i in range(images):
        (source / f"p{i}.png").write_bytes(product_png(96, 96, color=(40 + 60 * i, 90, 150)))
    found = discover_images(str(source))
    conn = {"conn_type": "image_edit", "host": service.url + "/v1", "password": "sk-possibly",
            "extra": {"backend": "openai", "model": "gpt-image-1.5", **FAST, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_POSSIBLY_EDIT", json.dumps(conn))
    ledger = Ledger(str(tmp_path / "work"))
    chunk = ChunkManifest("run_possibly", 0, found.source_root, found.items)
    run = ChunkRun(chunk, parse_recipe(RECIPE), ImageEditHook("possibly_edit").get_backend(),
                   str(tmp_path / "work" / "runs" / "run_possibly"), workspace=str(tmp_path / "work"),
                   concurrency=1, ledger=ledger, estimate_usd=0.05)
    return run, ledger


def test_a_retry_after_the_answer_was_dropped_is_booked_possibly_billed(service, monkeypatch, tmp_path):
    service.state.honour_idempotency = False  # as the real APIs: the retry is a second paid edit
    service.state.faults.add(kind="drop_after", count=1, path=EDITS)  # the edit is done, half its answer arrives
    run, ledger = _run(tmp_path, service, monkeypatch)
    records = asyncio.run(aedit_chunk(run))
    assert [r.status for r in records] == ["edited", "edited"]
    assert len(service.state.performed) == 3 and service.state.duplicates() == 1  # really paid twice

    entries = ledger.entries(run_key="run_possibly")
    sure = [e for e in entries if not e.possibly_billed]
    maybe = [e for e in entries if e.possibly_billed]
    assert len(sure) == 2 and len(maybe) == 1  # every duplicate charge at the service is on the books
    first = next(e for e in sure if e.image_id == maybe[0].image_id)
    # priced as the call that did answer (the same request): its tokens, its USD
    assert maybe[0].usd == first.usd > 0 and maybe[0].basis == "usage" and maybe[0].step == "warm"
    assert maybe[0].usage["reason"].startswith("answer lost (") and maybe[0].usage["attempt"] == 1
    # budgets count it (a cap must not overspend if it was billed); the report shows it apart
    assert ledger.run_spend("run_possibly") == pytest.approx(sum(e.usd for e in entries))
    total = cost_summary(entries)["total"]
    assert (total["calls"], total["possibly_billed_calls"]) == (2, 1)
    assert total["usd"] == pytest.approx(sum(e.usd for e in sure))
    assert total["possibly_billed_usd"] == pytest.approx(maybe[0].usd)

    # a rerun books nothing new: the possibly billed entry has a stable id
    assert ledger.record(run.ledger.entries(run_key="run_possibly")) == 0

    calls = possibly_billed_calls(entries)
    html = cost_section({"actual_usd": total["usd"], "paid_calls": 2, "cache_hits": 0, "possibly_billed": calls})
    assert "possibly billed twice" in html and maybe[0].image_id in html
    alert = alert_summary("task_failure", {"run_id": "r1", "dag_id": "catalog_refresh"}, possibly_billed=calls)
    assert "possibly billed twice: $" in alert["text"] and alert["fields"]["cost"]["possibly_billed_calls"] == 1
    assert alert["fields"]["cost"]["possibly_billed_usd"] == pytest.approx(maybe[0].usd)


def test_a_replayed_answer_proves_the_work_was_billed_once(service, monkeypatch, tmp_path):
    service.state.faults.add(kind="drop_after", count=1, path=EDITS)  # the service honours the key: a replay
    run, ledger = _run(tmp_path, service, monkeypatch)
    records = asyncio.run(aedit_chunk(run))
    assert [r.status for r in records] == ["edited", "edited"]
    assert service.stats()["replayed"] == 1 and service.state.duplicates() == 0
    entries = ledger.entries(run_key="run_possibly")
    assert len(entries) == 2 and not any(e.possibly_billed for e in entries)


def test_a_read_timeout_is_possibly_billed_even_when_the_provider_never_ran_it(service, monkeypatch, tmp_path):
    service.state.honour_idempotency = False
    service.state.faults.add(kind="hang", seconds=1.0, count=1, path=EDITS)  # the client gives up first
    run, ledger = _run(tmp_path, service, monkeypatch, images=1, timeout=0.3)
    records = asyncio.run(aedit_chunk(run))
    assert records[0].status == "edited" and len(service.state.performed) == 1
    maybe = [e for e in ledger.entries(run_key="run_possibly") if e.possibly_billed]
    # the client cannot tell an abandoned request from a slow one: it books the doubt, never hides it
    assert len(maybe) == 1 and "ReadTimeout" in maybe[0].usage["reason"]


def test_an_image_that_fails_after_lost_answers_books_each_lost_attempt(service, monkeypatch, tmp_path):
    service.state.honour_idempotency = False
    service.state.faults.add(kind="drop_after", count=3, path=EDITS)
    run, ledger = _run(tmp_path, service, monkeypatch, images=1)
    records = asyncio.run(aedit_chunk(run))
    assert records[0].status == "failed_retryable" and len(service.state.performed) == 3
    entries = ledger.entries(run_key="run_possibly")
    assert len(entries) == 3 and all(e.possibly_billed for e in entries)  # three paid, none answered: all booked
    assert all(e.basis == "estimate" and e.usd == pytest.approx(0.05) for e in entries)  # no answer to price by


def _transport(url: str, **settings) -> HttpTransport:
    return HttpTransport("openai", HttpSettings(url, max_attempts=2, backoff_initial=0.01, backoff_max=0.01,
                                                backoff_jitter=0.0, **settings))


def test_nothing_is_possibly_billed_when_the_body_never_left_or_the_request_is_free(service):
    closed = _transport("http://127.0.0.1:9", connect_timeout=0.5)  # nothing listens: a connect error
    with idempotency_scope("k") as paid:
        with pytest.raises(Exception, match="connection error"):
            closed.send(Request("POST", "images/edits", op="images.edit[a]", json={}, billed_step="a"))
    assert paid.possibly_billed == []
    service.state.faults.add(kind="drop", count=1, path="/v1/files")
    free = _transport(service.url + "/v1")
    with idempotency_scope("k") as paid:  # a free request (an upload) whose answer is lost costs nothing
        free.send(Request("POST", "files", op="files.create", data={"purpose": "batch"},
                          files=[("file", ("a.jsonl", b"{}\n", "application/octet-stream"))]))
    assert paid.possibly_billed == [] and service.state.requests("POST /v1/files") == 2  # dropped, then retried
