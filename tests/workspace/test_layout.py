"""The workspace layout: every path under a workspace, named once."""

from __future__ import annotations

from pathlib import Path

from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout, chunk_name, is_chunk_document


def test_run_paths_keep_the_documented_names(tmp_path: Path):
    workspace = WorkspaceLayout(str(tmp_path))
    run = workspace.run_for({"run_id": "manual__2026-01-02T03:04:05+00:00"})
    root = (tmp_path / "runs" / "manual__2026-01-02T03_04_05_00_00").as_uri()
    assert run.root == root and run.run_key == "manual__2026-01-02T03_04_05_00_00"
    assert run.discovery == f"{root}/discovery.json"
    assert run.chunk(3) == f"{root}/chunks/chunk-00003.json"
    assert run.capped_chunk(3) == f"{root}/chunks/capped/chunk-00003.json"
    assert run.state(12) == f"{root}/state/chunk-00012"
    assert run.jobs(0) == f"{root}/jobs/chunk-00000.json"
    assert run.intermediate("shoes/red", 1) == f"{root}/intermediate/shoes/red.step1"
    assert run.outputs == f"{root}/outputs"
    assert run.edit(7) == f"{root}/edits/chunk-00007.json"
    assert run.gate(7) == f"{root}/quality/chunk-00007.json"
    assert run.data_docs(7) == f"{root}/quality/data_docs/chunk-00007"
    assert (run.cost_decision, run.cost_report) == (f"{root}/cost/decision.json", f"{root}/cost/report.json")
    assert (run.report_json, run.report_html) == (f"{root}/report.json", f"{root}/report.html")


def test_workspace_paths(tmp_path: Path):
    workspace = WorkspaceLayout(str(tmp_path))
    base = tmp_path.as_uri()
    assert workspace.published_manifest == f"{base}/state/published_manifest.json"
    assert workspace.run_quarantine("r1") == f"{base}/quarantine/r1"
    assert workspace.review_snapshot("scheduled__x:y", "review") == f"{base}/reviews/scheduled__x_y.review.json"
    assert (workspace.cache, workspace.ledger, workspace.audit) == (f"{base}/cache", f"{base}/ledger", f"{base}/audit")
    assert workspace.routing_latest("marketplace_white_square") == f"{base}/routing/marketplace_white_square/latest.json"
    assert workspace.routing_decision("my recipe", "20261202T1-ab") == (
        f"{base}/routing/my_recipe/decisions/20261202T1-ab.json")


def test_a_run_root_given_directly_means_the_same_run(tmp_path: Path):
    """Plain functions take a run root; the layout built from it names what the workspace's would."""
    assert RunLayout(str(tmp_path / "runs" / "r1")) == WorkspaceLayout(str(tmp_path)).run("r1")
    assert RunLayout(f"{tmp_path.as_uri()}/runs/r1/").run_key == "r1"


def test_chunk_documents_are_told_apart_from_what_sits_beside_them():
    assert chunk_name(42) == "chunk-00042"
    assert is_chunk_document("s3://b/runs/r/quality/chunk-00001.json")
    assert not is_chunk_document("s3://b/runs/r/quality/data_docs")
    assert not is_chunk_document("s3://b/runs/r/quality/chunk-00001.html")
