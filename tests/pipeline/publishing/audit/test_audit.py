"""The audit trail end to end: records from a published run, Parquet in object storage, the CLI."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.audit import (
    COLUMNS,
    audit_records,
    find_records,
    open_audit,
    review_records,
    write_audit,
)
from airflow_image_catalog.pipeline.publishing.audit.cli import main, parse_since
from airflow_image_catalog.pipeline.publishing.audit.records import scrub_uri
from airflow_image_catalog.pipeline.publishing.audit.store import partition_uri
from airflow_image_catalog.storage import list_objects, read_bytes
from tests.fixtures.s3 import SECRET_KEY
from tests.pipeline.publishing.audit.conftest import FAKE_API_KEY, PAID, RUN_ID, RUN_KEY, PublishedRun

TODAY = datetime.now(UTC).date().isoformat()


def records_of(run: PublishedRun) -> list[dict]:
    """Exactly how the publish step calls the audit."""
    return audit_records(run.results, recipe=run.recipe, published=run.report["published"],
                         quarantined=run.report["quarantined"], ledger_entries=run.entries,
                         run={**run.run, "run_key": RUN_KEY})


def cli(capsys, workspace: str, *args: str) -> tuple[int, str]:
    code = main(["--workspace", workspace, *args])
    return code, capsys.readouterr().out


def cli_json(capsys, workspace: str, *args: str):
    code, out = cli(capsys, workspace, *args, "--json")
    return code, json.loads(out)


def test_one_record_per_published_or_quarantined_image(local_run: PublishedRun):
    records = records_of(local_run)
    by_id = {r["image_id"]: r for r in records}
    assert sorted(by_id) == ["box", "can", "jar", "mug"]  # "bad" failed: no audit record
    assert all(list(r) == list(COLUMNS) for r in records)
    assert {k: r["event"] for k, r in by_id.items()} == {
        "box": "quarantined", "can": "published", "jar": "published", "mug": "published"}
    edit0 = {r.image_id: r for r in local_run.results[0].edit.items}
    mug = by_id["mug"]
    assert mug["source_sha256"] == edit0["mug"].source_sha256 and mug["output_sha256"] == edit0["mug"].output_sha256
    published = {e["image_id"]: e for e in local_run.report["published"]}
    assert mug["published_uri"] == published["mug"]["published_uri"]
    assert sha256_of(mug["published_uri"]) == mug["published_sha256"] == published["mug"]["sha256"]
    assert mug["step_ids"] == ["white_background", "square_canvas"]
    prompts = json.loads(mug["prompts_json"])
    assert [p["prompt"] for p in prompts] == [s.prompt for s in local_run.recipe.steps]
    assert (mug["backend"], mug["cost_usd"], mug["paid_calls"]) == ("local", 0.0, 0)
    assert (mug["task_id"], mug["map_index"], mug["try_number"]) == ("edit", 0, 2)  # from record.edited_by
    assert by_id["can"]["map_index"] == 1 and by_id["can"]["try_number"] is None  # from the ledger entries
    assert by_id["box"]["map_index"] is None  # free edit, no edited_by: unknown, not guessed
    assert by_id["can"]["cost_usd"] == pytest.approx(sum(PAID["can"]))
    assert (by_id["can"]["tokens_in"], by_id["can"]["tokens_out"]) == (600, 8320)
    assert by_id["jar"]["cache_hit"] and by_id["jar"]["cost_usd"] == 0.0
    assert by_id["box"]["verdict"] == "quarantined" and by_id["box"]["failed_expectations"] == ["0.845 <= product_fill"]
    assert by_id["box"]["quarantine_uri"].endswith("/quarantine/box.jpg") and by_id["box"]["published_at"] is None
    assert mug["product_fill"] == 0.86 and mug["ssim_preserved"] is None
    assert (mug["quality_profile"], mug["dag_id"], mug["run_id"]) == ("amazon_main", "catalog_refresh", RUN_ID)
    assert mug["edited_at"] and mug["published_at"] and mug["recorded_by"] == f"catalog_refresh/{RUN_ID}/publish"


def sha256_of(uri: str) -> str:
    from airflow_image_catalog.workspace.manifest import sha256_hex

    return sha256_hex(read_bytes(uri))


def test_no_secret_reaches_a_record(local_run: PublishedRun):
    records = records_of(local_run)
    text = json.dumps(records)
    assert FAKE_API_KEY not in text and "Bearer" not in text
    can = next(r for r in records if r["image_id"] == "can")
    assert json.loads(can["preparation_json"]) == {"actions": ["downscale"], "note": "[redacted]"}
    credential_like = [c for c in COLUMNS if any(w in c for w in ("secret", "password", "key_id", "token_", "auth"))]
    assert credential_like == []
    assert scrub_uri("https://user:pw@cdn.example.com/a.jpg?X-Amz-Signature=abc#f") == "https://cdn.example.com/a.jpg"


def test_trace_by_published_path_sha256_and_image_id(local_run: PublishedRun, capsys):
    write_audit(records_of(local_run), local_run.workspace, run_key=RUN_KEY, day=TODAY)
    mug = next(e for e in local_run.report["published"] if e["image_id"] == "mug")
    path = mug["published_uri"][len("file://"):]
    for target in (path, mug["published_uri"], "mug.jpg", mug["sha256"], mug["sha256"][:12],
                   mug["output_sha256"], mug["source_sha256"], "mug"):
        code, rows = cli_json(capsys, local_run.workspace, "trace", target)
        assert code == 0 and [r["image_id"] for r in rows] == ["mug"], target
    assert rows[0]["source_sha256"] == mug["source_sha256"] and rows[0]["prompts"][0]["id"] == "white_background"
    code, out = cli(capsys, local_run.workspace, "trace", path)
    assert code == 0
    for text in (mug["source_uri"], mug["source_sha256"], "marketplace_white_square", "local / local-engine/",
                 "quality      pass  (profile amazon_main", "map_index 0  try 2", RUN_ID):
        assert text in out
    assert cli(capsys, local_run.workspace, "trace", "no-such-image") == (1, "no audit record for 'no-such-image'\n")


def test_run_cost_matches_the_ledger(local_run: PublishedRun, capsys):
    write_audit(records_of(local_run), local_run.workspace, run_key=RUN_KEY, day=TODAY)
    booked = math.fsum(e.usd for e in local_run.entries)
    in_audit = math.fsum(e.usd for e in local_run.entries if e.image_id != "bad")
    for run in (RUN_ID, RUN_KEY):
        code, cost = cli_json(capsys, local_run.workspace, "run-cost", run)
        assert code == 0
        assert cost["cost_usd"] == pytest.approx(in_audit) and cost["ledger"]["usd"] == pytest.approx(booked)
        assert cost["ledger"]["not_in_audit_usd"] == pytest.approx(sum(PAID["bad"]))
        assert (cost["images"], cost["published"], cost["quarantined"], cost["cache_hits"]) == (4, 3, 1, 1)
        assert cost["cost_per_published_image_usd"] == pytest.approx(in_audit / 3)
        assert {g["name"]: g["cost_usd"] for g in cost["by_model"]} == pytest.approx(
            {"local/local-engine/0.1.0": 0.0, "openai/gpt-image-2": in_audit})
        assert [g["name"] for g in cost["by_recipe"]] == ["marketplace_white_square"]
    code, out = cli(capsys, local_run.workspace, "run-cost", RUN_ID)
    assert "openai/gpt-image-2: $0.060000, 2 images, 2 paid calls" in out
    assert cli(capsys, local_run.workspace, "run-cost", "scheduled__nope")[0] == 1


def test_by_model_within_a_time_window(local_run: PublishedRun, capsys):
    records = records_of(local_run)
    write_audit(records, local_run.workspace, run_key=RUN_KEY, day=TODAY)
    old = (datetime.now(UTC) - timedelta(days=10))
    earlier = [{**r, "run_key": "old_run", "run_id": "old run", "edited_at": old.isoformat()} for r in records]
    write_audit(earlier, local_run.workspace, run_key="old_run", day=old.date().isoformat())
    code, rows = cli_json(capsys, local_run.workspace, "by-model", "gpt-image-2", "--since", "7d")
    # the two were edited concurrently: their order by edit time is not fixed
    assert code == 0 and sorted((r["image_id"], r["run_key"]) for r in rows) == [("can", RUN_KEY), ("jar", RUN_KEY)]
    assert all(r["uri"].endswith(f"/published/{r['image_id']}.jpg") for r in rows)
    since = (old - timedelta(days=1)).date().isoformat()
    code, rows = cli_json(capsys, local_run.workspace, "by-model", "openai/gpt-image-2", "--since", since)
    assert code == 0 and sorted(r["run_key"] for r in rows) == sorted(["old_run", "old_run", RUN_KEY, RUN_KEY])
    until = (old + timedelta(days=1)).date().isoformat()
    code, rows = cli_json(capsys, local_run.workspace, "by-model", "local-engine", "--since", "14d", "--until", until)
    assert code == 0 and sorted(r["image_id"] for r in rows) == ["box", "mug"]
    assert {r["run_key"] for r in rows} == {"old_run"}
    assert cli(capsys, local_run.workspace, "by-model", "flux-kontext-pro")[0] == 1
    code, out = cli(capsys, local_run.workspace, "by-model", "gpt-image-2")
    assert out.startswith("2 image(s) by gpt-image-2 edited") and "(2 published)" in out


def test_rerun_replaces_the_runs_records(local_run: PublishedRun, capsys):
    records = records_of(local_run)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    first = write_audit(records, local_run.workspace, run_key=RUN_KEY, day=yesterday)
    write_audit(records, local_run.workspace, run_key=RUN_KEY, day=yesterday)
    again = write_audit(records_of(local_run), local_run.workspace, run_key=RUN_KEY, day=TODAY)  # next day
    assert again == partition_uri(local_run.workspace, TODAY, RUN_KEY) != first
    parquet = [o.uri for o in list_objects(local_run.workspace + "/audit") if o.uri.endswith(".parquet")]
    assert len(parquet) == 1 and "day%3D" + TODAY in parquet[0] or f"day={TODAY}" in parquet[0]
    code, rows = cli_json(capsys, local_run.workspace, "sql", "SELECT image_id, day, run FROM audit ORDER BY 1")
    assert code == 0 and [r["image_id"] for r in rows] == ["box", "can", "jar", "mug"]
    assert {(r["day"], r["run"]) for r in rows} == {(TODAY, RUN_KEY)}


def test_review_decision_is_recorded_and_traceable(local_run: PublishedRun, capsys):
    write_audit(records_of(local_run), local_run.workspace, run_key=RUN_KEY, day=TODAY)
    published_uri = local_run.published_root + "/box.jpg"
    decided = [{"run_key": RUN_KEY, "image_id": "box", "review": {
        "decision": "approved", "by": "alice", "at": "2026-11-20T09:00:00+00:00", "note": "fill is fine for a mug",
        "published_uri": published_uri}}]
    originals = find_records(local_run.workspace, [(RUN_KEY, "box")])
    rows = review_records(decided, originals, run={"dag_id": "catalog_review", "run_id": "r1", "task_id": "review"})
    write_audit(rows, local_run.workspace, run_key="review_r1", day="2026-11-20")
    code, trail = cli_json(capsys, local_run.workspace, "trace", "box")
    assert code == 0 and [r["event"] for r in trail] == ["quarantined", "approved"]
    approved = trail[1]
    assert (approved["reviewer"], approved["published_uri"], approved["cost_usd"]) == ("alice", published_uri, 0.0)
    assert approved["source_sha256"] == trail[0]["source_sha256"] and approved["reviewed_at"].startswith("2026-11-20")
    code, out = cli(capsys, local_run.workspace, "trace", published_uri[len("file://"):])
    assert code == 0 and 'review       approved by alice at 2026-11-20T09:00:00+00:00  "fill is fine' in out
    code, cost = cli_json(capsys, local_run.workspace, "run-cost", RUN_ID)
    assert (cost["published"], cost["quarantined"]) == (4, 1)  # box: quarantined, then approved and published


def test_s3_store_is_mirrored_and_queried(s3_run: PublishedRun, s3_bucket, tmp_path: Path, capsys):
    records = records_of(s3_run)
    uri = write_audit(records, s3_run.workspace, run_key=RUN_KEY, day=TODAY)
    assert uri == s3_bucket.uri_for(f"work/audit/day={TODAY}/run={RUN_KEY}")
    write_audit(records, s3_run.workspace, run_key=RUN_KEY, day="2026-11-18")  # a rerun on another day
    keys = [o["Key"] for o in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name, Prefix="work/audit/")["Contents"]]
    assert [k for k in keys if k.endswith(".parquet")] == [f"work/audit/day=2026-11-18/run={RUN_KEY}/part-00000.parquet"]
    for key in keys:
        body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
        assert SECRET_KEY.encode() not in body and FAKE_API_KEY.encode() not in body
    can = next(e for e in s3_run.report["published"] if e["image_id"] == "can")
    cache = tmp_path / "cache"
    code, rows = cli_json(capsys, s3_run.workspace, "--cache-dir", str(cache), "trace", can["published_uri"])
    assert code == 0 and [r["image_id"] for r in rows] == ["can"] and rows[0]["published_sha256"] == can["sha256"]
    code, cost = cli_json(capsys, s3_run.workspace, "--cache-dir", str(cache), "run-cost", RUN_ID)
    assert cost["cost_usd"] == pytest.approx(sum(PAID["can"])) and cost["ledger"]["usd"] == pytest.approx(
        math.fsum(e.usd for e in s3_run.entries))
    write_audit(records[:1], s3_run.workspace, run_key=RUN_KEY, day="2026-11-18")  # replaced: the cache follows
    with open_audit(s3_run.workspace, cache_dir=cache) as con:
        assert con.execute("SELECT count(*) FROM audit").fetchone() == (1,)
    assert len(list(cache.rglob("*.parquet"))) == 1


def test_empty_store_usage_errors_and_sql(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    workspace = (tmp_path / "empty").as_uri()
    assert cli(capsys, workspace, "trace", "x")[0] == 1
    assert cli(capsys, workspace, "sql", "SELECT count(*) AS n FROM audit")[1].splitlines()[-1].strip() == "0"
    assert cli(capsys, workspace, "sql", "SELEC nonsense")[0] == 2
    assert cli(capsys, workspace, "by-model", "m", "--since", "last tuesday")[0] == 2
    assert main(["--workspace", workspace]) == 2  # no command
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 11, 19, 12, tzinfo=UTC)
    assert parse_since("2026-11-19") == datetime(2026, 11, 19, tzinfo=UTC)


def test_default_workspace_is_catalog_home(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CATALOG_HOME", str(tmp_path))
    assert main(["trace", "x"]) == 3  # no $CATALOG_HOME/work yet
    assert str(tmp_path / "work") in capsys.readouterr().err
    (tmp_path / "work").mkdir()
    assert main(["trace", "x"]) == 1 and not (tmp_path / "work" / "audit").exists()


def _failure(capsys, workspace: str, *args: str) -> tuple[int, str, dict]:
    """Exit code, stderr and the ``--json`` error object of one failing CLI call."""
    code = main(["--workspace", workspace, "--json", *args])
    captured = capsys.readouterr()
    return code, captured.err, json.loads(captured.out)


def test_errors_have_their_own_message_and_exit_code(tmp_path: Path, local_run: PublishedRun, capsys):
    """Not found, a missing workspace, an unsupported scheme and a storage failure are four answers."""
    code, err, payload = _failure(capsys, local_run.workspace, "trace", "no_such_image")
    assert code == 1 and payload == [] and "no audit record for 'no_such_image'" in err
    code, err, payload = _failure(capsys, str(tmp_path / "typo"), "trace", "mug")
    assert code == 3 and payload["error"]["kind"] == "workspace_missing"
    assert f"workspace not found: {(tmp_path / 'typo').as_uri()}" in err and "no audit record" not in err
    code, err, payload = _failure(capsys, "gs://catalog/work", "run-cost", RUN_ID)
    assert code == 4 and payload["error"]["kind"] == "unsupported_scheme"
    assert "unsupported workspace scheme 'gs'" in err and "file, s3" in err
    (tmp_path / "file-not-dir").write_text("x")
    assert _failure(capsys, str(tmp_path / "file-not-dir"), "trace", "mug")[0] == 3


def test_s3_missing_bucket_and_unreachable_store_are_not_not_found(s3_bucket, monkeypatch, capsys):
    from tests.fixtures.s3 import point_s3_at

    code, err, payload = _failure(capsys, f"s3://{s3_bucket.name}-missing/work", "trace", "mug")
    assert code == 3 and "bucket does not exist" in err and payload["error"]["kind"] == "workspace_missing"
    code, err, payload = _failure(capsys, s3_bucket.uri_for("work"), "trace", "mug")
    assert code == 1 and payload == []  # the bucket is there; nothing recorded yet
    monkeypatch.setenv("CATALOG_S3_MAX_ATTEMPTS", "1")
    point_s3_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    code, err, payload = _failure(capsys, s3_bucket.uri_for("work"), "sql", "SELECT 1")
    assert code == 5 and payload["error"]["kind"] == "storage_error"
    assert "cannot read the audit store" in err and SECRET_KEY not in err


@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_json_on_stdout_stays_clean_when_airflow_logs(s3_run: PublishedRun, tmp_path: Path, entry: str):
    """With an ``s3://`` workspace the S3 client comes from Airflow's connection, and Airflow logs while
    building it: those lines go to stderr, stdout is only the JSON."""
    import os
    import subprocess
    import sys

    write_audit(records_of(s3_run), s3_run.workspace, run_key=RUN_KEY, day=TODAY)
    script = Path(sys.executable).parent / "image-catalog-audit"
    command = [str(script)] if entry == "console script" else [
        sys.executable, "-m", "airflow_image_catalog.pipeline.publishing.audit"]
    proc = subprocess.run([*command, "--workspace", s3_run.workspace, "trace", "can", "--json"],
                          capture_output=True, text=True,
                          env={**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [r["image_id"] for r in json.loads(proc.stdout)] == ["can"]
    assert "AWS Connection" in proc.stderr  # Airflow did log: on stderr


@pytest.mark.parametrize("statement", [
    "CREATE TABLE stolen AS SELECT * FROM audit",
    "COPY (SELECT * FROM audit) TO '{out}/copy.csv'",
    "ATTACH '{out}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SELECT 1; DROP VIEW audit",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM '{secret}'",
    "SELECT * FROM glob('{out}/*')",
    "SELECT * FROM read_text('{audit}/../../secret.txt')",
])
def test_sql_is_read_only(local_run: PublishedRun, tmp_path: Path, capsys, statement):
    """``sql`` answers SELECTs over the audit tables and refuses everything else before or while running it."""
    write_audit(records_of(local_run), local_run.workspace, run_key=RUN_KEY, day=TODAY)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    audit = tmp_path / "work" / "audit"
    code, err, payload = _failure(capsys, local_run.workspace, "sql",
                                  statement.format(out=tmp_path, secret=secret, audit=audit))
    assert code == 2 and payload["error"]["kind"] == "usage", err
    assert "hunter2" not in err and not (tmp_path / "copy.csv").exists() and not (tmp_path / "other.duckdb").exists()
    code, rows = cli_json(capsys, local_run.workspace, "sql", "SELECT count(*) AS n FROM audit")
    assert code == 0 and rows == [{"n": 4}]

