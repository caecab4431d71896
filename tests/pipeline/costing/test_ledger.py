"""The cost ledger: one durable entry per paid call, idempotent under reruns, read by budget checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import unquote

import pytest

from airflow_image_catalog.pipeline.costing.ledger import (
    Ledger,
    LedgerEntry,
    cost_summary,
    entries_for_usage,
    entry_id_for,
    reconcile,
)
from airflow_image_catalog.pipeline.costing.pricing import cost_of_usage
from airflow_image_catalog.storage import list_objects, read_json, write_json

# what the backends write for one paid call (operators/airflow_image_catalog/backends/*.py usage_record)
OPENAI = {"step": "whiten", "provider": "openai", "model": "gpt-image-2", "images": 1, "batch": False,
          "input_tokens": 4364, "input_image_tokens": 4354, "input_text_tokens": 10, "output_tokens": 1056,
          "total_tokens": 5420}
OPENAI_USD = (4354 * 8 + 10 * 5 + 1056 * 30) / 1e6
BFL = {"step": "whiten", "provider": "bfl", "model": "flux-kontext-pro", "images": 1, "credits": 4, "job_id": "job-1"}
AT = "2026-03-10T12:00:00+00:00"


@pytest.fixture(params=["file", "s3"])
def workspace(request, tmp_path) -> str:
    """The workspace root on local disk and on (moto) S3: the same tests run on both."""
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket").uri + "/workspace"
    return (tmp_path / "workspace").as_uri()


def book(cache_key: str, usage=(OPENAI,), *, at: str = AT, run_key: str = "run_a", image_id: str = "img-1",
         **context) -> list[LedgerEntry]:
    return entries_for_usage(list(usage), cache_key=cache_key, run_key=run_key, image_id=image_id, at=at,
                             **context)


def stored_entries(ledger: Ledger) -> list[str]:
    """Entry object keys under the ledger (summaries and the run index left out)."""
    names = [unquote(obj.uri[len(ledger.root) + 1:]) for obj in list_objects(ledger.root)]
    return sorted(n for n in names if n.startswith("day") and not n.endswith("_summary.json"))


# -- entries -------------------------------------------------------------------------------------------
def test_one_entry_per_call_with_its_actual_cost(workspace):
    ledger = Ledger(workspace)
    entries = book("key-1", (OPENAI, BFL), recipe="white", dag_id="catalog", run_id="scheduled__x", task_id="edit",
                   map_index=3, chunk_index=3, source_sha256="abc")
    assert [e.call_index for e in entries] == [0, 1] and len({e.entry_id for e in entries}) == 2
    assert entries[0].usd == pytest.approx(OPENAI_USD, abs=1e-9) and entries[0].basis == "usage"
    assert entries[1].usd == pytest.approx(0.04) and entries[1].basis == "usage" and entries[1].request_id == "job-1"
    assert entries[0].day == "2026-03-10" and entries[0].usage == OPENAI and entries[0].map_index == 3
    assert ledger.record(entries) == 2
    assert stored_entries(ledger) == sorted(f"day=2026-03-10/run=run_a/{e.entry_id}.json" for e in entries)
    assert ledger.entries(day="2026-03-10") == entries  # round trip through storage
    assert ledger.run_days("run_a") == ["2026-03-10"]


def test_rerun_records_nothing_new(workspace):
    ledger = Ledger(workspace)
    entries = book("key-1", (OPENAI, OPENAI))
    assert ledger.record(entries) == 2
    before = ledger.spent(run_key="run_a")
    assert ledger.record(entries) == 0
    assert Ledger(workspace).record(book("key-1", (OPENAI, OPENAI))) == 0  # another process, same calls
    assert len(stored_entries(ledger)) == 2 and ledger.spent(run_key="run_a") == before


def test_crash_rerun_dedupes_but_a_distinct_provider_request_id_is_a_second_row(workspace):
    ledger = Ledger(workspace)
    assert ledger.record(book("key-1", (OPENAI, BFL), at="2026-03-10T23:59:30Z")) == 2
    # the task died before writing the image's state; the rerun replays both calls (same idempotency
    # keys, same BFL job back) a minute later, past midnight: still the same two calls
    assert ledger.record(book("key-1", (OPENAI, BFL), at="2026-03-11T00:00:30Z")) == 0
    # a provider that ignored the idempotency key ran (and billed) a second job: a second row
    second_job = {**BFL, "job_id": "job-2"}
    assert ledger.record(book("key-1", (OPENAI, second_job), at="2026-03-11T00:00:30Z")) == 1
    assert len(stored_entries(ledger)) == 3
    assert ledger.spent(run_key="run_a") == pytest.approx(OPENAI_USD + 0.08, abs=1e-9)
    # the deferrable path books one step at a time: call 1 of the chain is the same call
    assert ledger.record(book("key-1", (BFL,), first_call_index=1, at="2026-03-10T23:59:59Z")) == 0


def test_partitions_by_utc_day(workspace):
    ledger = Ledger(workspace)
    ledger.record(book("key-1", at="2026-03-31T23:59:59Z") + book("key-2", at="2026-04-01T00:00:01Z"))
    ledger.record(book("key-3", at="2026-04-01T01:30:00+02:00"))  # 23:30 UTC the day before
    days = sorted({name.split("/")[0] for name in stored_entries(ledger)})
    assert days == ["day=2026-03-31", "day=2026-04-01"]
    assert ledger.spent(day="2026-03-31") == pytest.approx(2 * OPENAI_USD, abs=1e-9)
    assert ledger.spent(day="2026-04-01") == pytest.approx(OPENAI_USD, abs=1e-9)
    assert ledger.spent(month="2026-03") == ledger.spent(day="2026-03-31")


def test_spent_per_day_month_run_and_all_time(tmp_path):
    ledger = Ledger(tmp_path.as_uri())
    ledger.record(book("a1", at="2026-03-10T10:00:00Z", run_key="nightly_0310"))
    ledger.record(book("a2", (BFL,), at="2026-03-11T00:10:00Z", run_key="nightly_0310"))  # the run spans midnight
    ledger.record(book("b1", (BFL, BFL), at="2026-03-11T10:00:00Z", run_key="manual_1"))
    ledger.record(book("c1", at="2026-04-02T10:00:00Z", run_key="nightly_0402"))
    assert ledger.run_days("nightly_0310") == ["2026-03-10", "2026-03-11"]
    assert ledger.run_spend("nightly_0310") == pytest.approx(OPENAI_USD + 0.04, abs=1e-9)
    assert ledger.spent(day="2026-03-11") == pytest.approx(3 * 0.04)  # two runs' calls that day
    assert ledger.spent(day="2026-03-11", run_key="manual_1") == pytest.approx(2 * 0.04)
    assert ledger.spent(month="2026-03") == pytest.approx(OPENAI_USD + 3 * 0.04, abs=1e-9)
    assert ledger.spent(month="2026-04") == pytest.approx(OPENAI_USD, abs=1e-9)
    assert ledger.spent() == pytest.approx(2 * OPENAI_USD + 3 * 0.04, abs=1e-9)
    assert ledger.spent(month="2026-05") == 0.0 and ledger.run_spend("never_ran") == 0.0
    assert [e.run_key for e in ledger.entries(month="2026-03")] == ["nightly_0310"] * 2 + ["manual_1"] * 2


# -- summaries ----------------------------------------------------------------------------------------
def _tamper(ledger: Ledger, entry: LedgerEntry, usd: float) -> None:
    """Change a booked entry behind the ledger's back (entries are immutable by contract)."""
    write_json(ledger.entry_uri(entry), {**entry.to_dict(), "usd": usd})


def test_summaries_are_used_refreshed_and_never_wrong(workspace):
    ledger = Ledger(workspace)
    first = book("key-1", (OPENAI, BFL))
    ledger.record(first)
    summary = ledger.summarise("2026-03-10", "run_a")
    assert summary["count"] == 2 and summary["usd"] == pytest.approx(OPENAI_USD + 0.04, abs=1e-9)
    summary_uri = f"{ledger.partition_uri('2026-03-10', 'run_a')}/_summary.json"
    assert read_json(summary_uri)["usd_by_entry"] == {e.entry_id: e.usd for e in first}

    _tamper(ledger, first[1], 5.0)  # the summary is used: the entry is not read again
    assert ledger.spent(day="2026-03-10") == pytest.approx(OPENAI_USD + 0.04, abs=1e-9)

    late = book("key-2", (BFL,), at="2026-03-10T18:00:00Z")  # booked after the summary: counted
    ledger.record(late)
    assert ledger.spent(month="2026-03") == pytest.approx(OPENAI_USD + 0.08, abs=1e-9)
    assert read_json(summary_uri)["count"] == 3  # the reader refreshed the summary

    assert ledger.summarise("2026-03-10", "run_a", rebuild=True)["usd"] == pytest.approx(OPENAI_USD + 5.04)
    assert ledger.spent(run_key="run_a") == pytest.approx(OPENAI_USD + 5.04)


def test_a_summary_never_counts_entries_that_are_not_listed(tmp_path):
    ledger = Ledger(tmp_path.as_uri())
    entries = book("key-1", (OPENAI, BFL))
    ledger.record(entries)
    ledger.summarise("2026-03-10", "run_a")
    Path(ledger.entry_uri(entries[0]).removeprefix("file://")).unlink()
    assert ledger.spent(day="2026-03-10") == pytest.approx(0.04)
    Path(f"{ledger.partition_uri('2026-03-10', 'run_a').removeprefix('file://')}/_summary.json").write_text("{oops")
    assert ledger.spent(day="2026-03-10") == pytest.approx(0.04)  # a damaged summary is rebuilt


def test_a_run_in_progress_is_read_without_a_summary_and_then_incrementally(tmp_path):
    ledger = Ledger(tmp_path.as_uri())
    ledger.record(book("key-1"))
    partition = Path(ledger.partition_uri("2026-03-10", "run_a").removeprefix("file://"))
    assert not (partition / "_summary.json").exists()
    assert ledger.run_spend("run_a") == pytest.approx(OPENAI_USD, abs=1e-9)
    assert json.loads((partition / "_summary.json").read_text())["count"] == 1
    ledger.record(book("key-2"))
    assert ledger.run_spend("run_a") == pytest.approx(2 * OPENAI_USD, abs=1e-9)


# -- pricing basis ------------------------------------------------------------------------------------
def test_cost_basis_falls_back_to_the_estimate():
    no_usage = {**OPENAI, "input_tokens": None, "input_image_tokens": None, "input_text_tokens": None,
                "output_tokens": None, "total_tokens": None}
    unknown_model = {**OPENAI, "model": "dall-e-9"}
    firefly = {"step": "fill", "provider": "firefly", "model": "firefly-fill-v3", "images": 1, "job_id": "f1"}
    local = {"step": "whiten", "images": 1, "cost_usd": 0.0}
    entries = book("key-1", (no_usage, unknown_model, firefly, local), estimated_usd=[0.05, 0.06])
    assert [(e.basis, e.usd, e.estimated_usd) for e in entries] == [
        ("estimate", 0.05, 0.05), ("estimate", 0.06, 0.06), ("price_table", 0.04, None),
        ("price_table", 0.0, None)]
    assert entries[3].provider == "local"
    spread = book("key-1", (no_usage, OPENAI), estimated_usd=0.1)  # an image's estimate over its calls
    assert [(e.basis, e.usd, e.estimated_usd) for e in spread] == [
        ("estimate", 0.05, 0.05), ("usage", pytest.approx(OPENAI_USD), 0.05)]
    assert book("key-1", (no_usage,))[0].basis == "unknown" and book("key-1", (no_usage,))[0].usd == 0.0
    batch = book("key-1", ({**OPENAI, "batch": True},))[0]
    assert batch.batch and batch.usd == pytest.approx(cost_of_usage({**OPENAI, "batch": True}))


def test_prices_come_from_the_given_table(tmp_path):
    negotiated = tmp_path / "prices.yaml"
    negotiated.write_text("version: 1\nproviders:\n  bfl:\n    credit_usd: 0.005\n")
    assert book("key-1", (BFL,), prices=str(negotiated))[0].usd == pytest.approx(0.02)
    missing = book("key-1", (BFL,), prices=str(tmp_path / "missing.yaml"), estimated_usd=0.03)[0]
    assert (missing.basis, missing.usd) == ("estimate", 0.03)  # paid calls are booked even so


def test_cache_hits_book_nothing():
    assert book("key-1", ({**OPENAI, "cache_hit": True}, {**OPENAI, "cached": True})) == []
    assert entries_for_usage([OPENAI], cache_key="k", run_key="r", image_id="i", cache_hit=True) == []


def test_ids_entries_and_keys_are_checked():
    assert entry_id_for("k", 0) == entry_id_for("k", 0) != entry_id_for("k", 1) != entry_id_for("k", 1, "req")
    entry = book("key-1")[0]
    assert LedgerEntry.from_dict({**entry.to_dict(), "added_later": 1}) == entry
    with pytest.raises(ValueError, match="run_key"):
        book("key-1", run_key="../escape")
    with pytest.raises(ValueError, match="cache key"):
        book("")
    ledger = Ledger("/tmp/never-written")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ledger.spent(day="2026-3-1")
    with pytest.raises(ValueError, match="YYYY-MM"):
        ledger.spent(month="2026-13")
    with pytest.raises(ValueError, match="not both"):
        ledger.spent(day="2026-03-01", month="2026-03")


# -- reconciliation and the report --------------------------------------------------------------------
def test_reconcile_figures_and_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_image_catalog.pipeline.costing.ledger"):
        over = reconcile(1.00, 1.30, label="run nightly")
    assert over["error_usd"] == pytest.approx(0.30) and over["error_pct"] == 30.0 and over["warning"]
    assert "+30.0%" in over["message"] and "run nightly" in caplog.text
    assert reconcile(1.00, 1.10)["warning"] is False and reconcile(1.00, 1.10)["error_pct"] == 10.0
    assert reconcile(1.00, 0.50) | {"message": ""} == {
        "estimate_usd": 1.0, "actual_usd": 0.5, "error_usd": -0.5, "error_pct": -50.0, "warning": True, "message": ""}
    assert reconcile(2.00, 2.30, warn_pct=10)["warning"] is True
    nothing = reconcile(0, 0)
    assert nothing["error_pct"] is None and nothing["error_usd"] == 0 and not nothing["warning"]
    unplanned = reconcile(0, 0.25)
    assert unplanned["error_pct"] is None and unplanned["warning"] and unplanned["error_usd"] == 0.25
    with pytest.raises(ValueError):
        reconcile(float("nan"), 1)


def test_cost_summary_groups_per_recipe_model_and_provider():
    entries = (book("k1", (OPENAI, OPENAI), recipe="white", image_id="a")
               + book("k2", (OPENAI,), recipe="white", image_id="b")
               + book("k3", (BFL, {**BFL, "job_id": "job-9", "credits": 8, "model": "flux-kontext-max"}),
                      recipe="lifestyle", image_id="a"))
    summary = cost_summary(entries)
    assert summary["total"] == {"calls": 5, "images": 2, "tokens_in": 3 * 4364, "tokens_out": 3 * 1056,
                                "credits": 12.0, "usd": pytest.approx(3 * OPENAI_USD + 0.12, abs=1e-9),
                                "possibly_billed_calls": 0, "possibly_billed_usd": 0.0}
    assert summary["by_recipe"]["white"]["images"] == 2 and summary["by_recipe"]["lifestyle"]["calls"] == 2
    assert set(summary["by_model"]) == {"openai/gpt-image-2", "bfl/flux-kontext-pro", "bfl/flux-kontext-max"}
    assert summary["by_model"]["bfl/flux-kontext-max"]["usd"] == pytest.approx(0.08)
    assert summary["by_provider"]["bfl"] == {"calls": 2, "images": 1, "tokens_in": 0, "tokens_out": 0,
                                             "credits": 12.0, "usd": pytest.approx(0.12),
                                             "possibly_billed_calls": 0, "possibly_billed_usd": 0.0}
    assert cost_summary([])["total"]["calls"] == 0


# -- S3 faults ----------------------------------------------------------------------------------------
def test_s3_5xx_on_put_during_record_is_retried_and_nothing_is_lost_or_doubled(s3_bucket, s3_faults):
    ledger = Ledger(s3_bucket.uri + "/workspace")
    entries = book("key-1", (OPENAI, BFL))
    s3_faults.fail("PUT", times=1)  # the first PUT: the run index
    s3_faults.fail("PUT", times=1, key_contains=entries[1].entry_id)  # and the second entry's
    assert ledger.record(entries) == 2
    assert s3_faults.stats()["failed"] == {"PUT": 2} and not s3_faults.pending()
    assert ledger.record(entries) == 0
    assert stored_entries(ledger) == sorted(f"day=2026-03-10/run=run_a/{e.entry_id}.json" for e in entries)
    assert ledger.spent(day="2026-03-10") == pytest.approx(OPENAI_USD + 0.04, abs=1e-9)
