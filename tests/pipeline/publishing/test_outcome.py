"""The publishing policy's one owner: chunk statuses from manifests and task states, what publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.outcome import (
    PolicyError,
    RunOutcome,
    check_policy,
    chunk_outcomes,
    task_failures,
)
from airflow_image_catalog.storage import write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, SourceItem


def _run_with_chunks(tmp_path: Path, n: int):
    run = WorkspaceLayout(str(tmp_path / "work")).run("manual__x")
    uris = []
    for index in range(n):
        items = [SourceItem(f"img{index}-{i}", f"file:///src/{index}-{i}.png", "0" * 64, 10) for i in range(3)]
        uris.append(write_json(run.chunk(index), ChunkManifest("manual__x", index, "file:///src", items).to_dict()))
    return run, uris


def test_each_chunk_gets_its_status_and_the_reason_its_task_wrote(tmp_path: Path):
    run, uris = _run_with_chunks(tmp_path, 4)
    write_json(run.edit(0), {"kind": "edit", "failure": None})
    write_json(run.gate(0), {"kind": "gate", "failure": None})
    write_json(run.edit(1), {"kind": "edit", "failure": "chunk 1: 3 of 3 images failed finally"})
    write_json(run.gate(1), {"kind": "gate", "failure": None})  # an earlier try's verdict: not this try's
    write_json(run.edit(2), {"kind": "edit", "failure": None})
    write_json(run.gate(2), {"kind": "gate", "failure": "chunk 2: pass rate 33% is below 80%"})
    states = {"edit_0": "success", "edit_1": "failed", "edit_2": "success", "edit_3": "failed"}

    chunks = chunk_outcomes(uris, run, states)

    assert [(c.chunk_index, c.status) for c in chunks] == [(0, "ok"), (1, "edit_failed"), (2, "gate_failed"),
                                                         (3, "edit_failed")]
    assert chunks[1].reason == "chunk 1: 3 of 3 images failed finally"
    assert chunks[2].reason == "chunk 2: pass rate 33% is below 80%"
    assert chunks[3].reason == "edit[3] ended failed before writing a result; see its log"
    assert chunks[3].edit_manifest_uri is None and chunks[0].images == 3

    partial, strict = RunOutcome("partial", chunks, []), RunOutcome("strict", chunks, [])
    assert partial.failed and strict.failed
    # partial: the images that passed, the failing gate chunk's included; a failed edit was never gated
    assert [partial.publishes(i) for i in range(4)] == [True, False, True, False]
    assert [strict.publishes(i) for i in range(4)] == [False] * 4
    assert strict.held_reason(0).startswith("strict publishing")
    assert partial.summary()["reasons"][0] == "chunk 1 edit failed: chunk 1: 3 of 3 images failed finally"


def test_a_gate_that_wrote_nothing_holds_its_chunk(tmp_path: Path):
    run, uris = _run_with_chunks(tmp_path, 1)
    write_json(run.edit(0), {"kind": "edit", "failure": None})
    (chunk,) = chunk_outcomes(uris, run, {"edit_0": "success"})
    assert chunk.status == "not_gated" and not RunOutcome("partial", [chunk], []).publishes(0)


def test_a_clean_run_succeeds_and_publishes_every_chunk(tmp_path: Path):
    run, uris = _run_with_chunks(tmp_path, 2)
    for index in range(2):
        write_json(run.edit(index), {"kind": "edit"})
        write_json(run.gate(index), {"kind": "gate", "failure": None})
    outcome = RunOutcome("strict", chunk_outcomes(uris, run, {"edit_0": "success", "edit_1": "success"}), [])
    assert not outcome.failed and outcome.publishes(0) and outcome.publishes(1)
    assert outcome.summary()["status"] == "success" and outcome.summary()["reasons"] == []


def test_task_failures_name_the_unmapped_tasks_that_failed():
    states = {"check_config": "success", "discover": "success", "cost_check": "failed", "edit": "upstream_failed",
              "quality_gate_0": "failed", "publish": "running"}
    assert task_failures(states, mapped=("edit", "quality_gate"), own_task_id="publish") == ["cost_check failed"]
    assert RunOutcome("partial", [], ["cost_check failed"]).failed


def test_an_unknown_policy_is_refused_by_name():
    assert check_policy("strict") == "strict"
    with pytest.raises(PolicyError, match="publish_policy: 'all' is not one of partial, strict"):
        check_policy("all")
