"""The rights check in catalog_refresh: a source whose terms forbid AI processing is refused for free (no
request reaches the edit service, counted there), finally (the next run does not retry its bytes) and
audited; a licensed source is edited and published keeping its rights, read back by exiftool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.audit.store import open_audit, query
from airflow_image_catalog.workspace.manifest import safe_run_key
from tests.conftest import copy_samples
from tests.dags.test_catalog_refresh import _run
from tests.dags.test_catalog_refresh_openai import FAST, STEPS
from tests.exiftool import needs_exiftool, read_tags, write_tags

pytestmark = [pytest.mark.usefixtures("airflow_db"), needs_exiftool]

FORBIDDING = {"XMP-dc:Rights": "© 2026 Acme Photo Ltd", "IPTC:CopyrightNotice": "© 2026 Acme Photo Ltd",
              "XMP-xmpRights:UsageTerms": "Internal use only. No AI processing."}
LICENSED = {"XMP-dc:Rights": "© 2026 Shop Ltd", "XMP-dc:Creator": "Jane Doe", "IPTC:By-line": "Jane Doe",
            "IPTC:CopyrightNotice": "© 2026 Shop Ltd", "XMP-plus:LicensorName": "Shop Licensing",
            "XMP-xmpRights:UsageTerms": "Licensed for the shop's catalogue; edits allowed.",
            "XMP-photoshop:Credit": "Shop Studio"}


def test_forbidden_source_is_refused_before_any_request_and_licensed_rights_are_kept(
        tmp_path: Path, sample_set, service, monkeypatch):
    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "box_tea.jpg", "can_soda.jpg"))
    write_tags(source / "box_tea.jpg", FORBIDDING)
    write_tags(source / "can_soda.jpg", LICENSED)
    service.state.api_key = "sk-rights-key"
    conn = {"conn_type": "image_edit", "host": service.openai_base_url, "password": "sk-rights-key",
            "extra": {"backend": "openai", **FAST}}
    monkeypatch.setenv("AIRFLOW_CONN_RIGHTS_OPENAI", json.dumps(conn))

    dagrun, report = _run(tmp_path, source, backend_conn_id="rights_openai")

    assert dagrun.state == "success"
    # the refused image never reached the (paid) backend: one request per step for the two others only
    assert service.state.served["POST /v1/images/edits"] == 2 * STEPS == service.state.served["total"]
    rights = report["rights"]
    assert rights["counts"] == {"go": 2, "needs_consent": 0, "refused": 1}
    assert rights["refused"] == ["box_tea"] and rights["reasons"] == {"no_rights_metadata": 1, "terms_forbid": 1}  # ball_red: the default
    assert {p.stem for p in (tmp_path / "published").iterdir()} == {"ball_red", "can_soda"}
    assert report["cost"]["decision"]["images"] == 2  # priced only what may be edited
    counts = report["counts"]  # the refused one is found and changed, never edited nor counted as an edit failure
    assert {k: counts[k] for k in ("found", "changed", "rights_refused", "edited", "failed", "published")} == {
        "found": 3, "changed": 3, "rights_refused": 1, "edited": 2, "failed": 0, "published": 2}
    html = Path(report["report_html"][len("file://"):]).read_text()
    assert "3 found, 3 new or changed; 1 refused by the rights check" in html
    assert "rights check (policy <b>default</b>): 2 go" in html and "refused (never sent to a backend): box_tea" in html

    decision = json.loads(next((tmp_path / "work" / "runs").glob("*/rights/decision.json")).read_text())
    refused = next(i for i in decision["items"] if i["image_id"] == "box_tea")
    assert refused["decision"] == "refused" and refused["rights"]["usage_terms"] == FORBIDDING[
        "XMP-xmpRights:UsageTerms"]
    assert "'No AI'" in refused["reasons"][0]["message"]

    # the published file keeps the licensed source's rights next to our provenance
    tags = read_tags(tmp_path / "published" / "can_soda.jpg")
    assert tags["XMP-dc:Rights"] == tags["IPTC:CopyrightNotice"] == "© 2026 Shop Ltd"
    assert tags["XMP-dc:Creator"] == ["Jane Doe"] and tags["IPTC:By-line"] == "Jane Doe"
    assert tags["XMP-plus:Licensor"] == [{"LicensorName": "Shop Licensing"}]
    assert tags["XMP-xmpRights:UsageTerms"] == LICENSED["XMP-xmpRights:UsageTerms"]
    assert tags["XMP-photoshop:Credit"] == "Shop Studio"
    assert tags["XMP-iptcExt:DigitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")

    audit = {row["image_id"]: row for row in query(open_audit(str(tmp_path / "work")), "SELECT * FROM audit")}
    assert audit["box_tea"]["event"] == "refused" and audit["box_tea"]["rights_decision"] == "refused"
    assert audit["box_tea"]["rights_reasons"] == ["terms_forbid"]
    assert "No AI processing" in audit["box_tea"]["rights_json"]
    assert audit["can_soda"]["event"] == "published" and audit["can_soda"]["rights_decision"] == "go"
    assert "Shop Licensing" in audit["can_soda"]["rights_json"]

    # refused is final: the next run neither asks again nor pays for the same bytes
    service.state.reset()
    dagrun, _ = _run(tmp_path, source, backend_conn_id="rights_openai", only_changed=True)
    assert dagrun.state == "success" and service.state.served["total"] == 0
    rerun = tmp_path / "work" / "runs" / safe_run_key(dagrun.run_id)
    counts = json.loads((rerun / "report.json").read_text())["counts"]  # 3 found, none new: not "found 0"
    assert {k: counts[k] for k in ("found", "changed", "unchanged", "refused_before", "rights_refused")} == {
        "found": 3, "changed": 0, "unchanged": 2, "refused_before": 1, "rights_refused": 0}
    discovery = json.loads((rerun / "discovery.json").read_text())
    assert discovery["images"] == 0 and len(discovery["refused_before"]) == 1  # box_tea, for the same bytes
