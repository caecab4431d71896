"""The plugin inside Airflow's own api-server app (FastAPI TestClient): loading, auth, file serving,
decisions, and the operators' extra links."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.plugin.conftest import CatalogRun


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    """Airflow's api-server app (core API + plugins + auth manager), as ``airflow api-server`` builds it."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app("core")) as client:
        yield client


def _token(role: str, name: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {"Authorization": f"Bearer {get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=name, role=role))}"}


@pytest.fixture
def configured(fresh_workspace: CatalogRun, monkeypatch) -> CatalogRun:
    for key, value in fresh_workspace.env().items():
        monkeypatch.setenv(key, value)
    return fresh_workspace


def test_plugin_registers_once_from_entry_point_or_plugins_folder(monkeypatch):
    import importlib.metadata

    from airflow._shared.plugins_manager import _load_plugins_from_plugin_directory

    from airflow_image_catalog.plugin import CatalogPlugin

    points = importlib.metadata.entry_points(group="airflow.plugins")
    assert any(ep.name == "image_catalog" and ep.load() is CatalogPlugin for ep in points)
    # installed: the plugins-folder file stands back, so Airflow does not see the plugin twice
    plugins, errors = _load_plugins_from_plugin_directory(str(REPO / "plugins"))
    assert not errors and [p.name for p in plugins] == []
    # not installed (the package only on the path): the plugins folder provides it
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    plugins, errors = _load_plugins_from_plugin_directory(str(REPO / "plugins"))
    assert not errors and [p.name for p in plugins] == ["image_catalog"]


def test_plugin_import_is_light():
    import subprocess
    import sys

    code = ("import sys, airflow_image_catalog.plugin; heavy = [m for m in ('duckdb', 'fastapi', 'PIL', 'cv2', "
            "'great_expectations', 'airflow_image_catalog.plugin.app') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plugin_interface():
    from airflow_image_catalog.plugin import CatalogPlugin

    plugin = CatalogPlugin()
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/image-catalog" and app["app"] is plugin.fastapi_apps[0]["app"]
    (view,) = plugin.external_views
    assert view["href"] == "/image-catalog/" and view["destination"] == "nav" and view["url_route"]
    assert [m.__name__ for m in plugin.macros] == ["run_page_url"]


def test_every_page_needs_an_airflow_session(airflow_app, configured: CatalogRun):
    for path in ("/image-catalog/", "/image-catalog/review", "/image-catalog/audit?q=ball_red",
                 f"/image-catalog/runs/{configured.run_key}", "/image-catalog/files/work/state/published_manifest.json"):
        browser = airflow_app.get(path, headers={"Accept": "text/html"}, follow_redirects=False)
        assert browser.status_code == 307 and browser.headers["location"].startswith("/auth/login?next="), path
        assert airflow_app.get(path).status_code == 401, path
        forged = airflow_app.get(path, headers={"Authorization": "Bearer not-a-jwt"})
        assert forged.status_code == 403, path
    decision = airflow_app.post(f"/image-catalog/review/{configured.run_key}/ball_red", data={"decision": "approve"})
    assert decision.status_code == 401
    assert airflow_app.post("/image-catalog/review/hitl", data={"dag_id": "catalog_review", "run_id": "x",
                                                                 "task_id": "y"}).status_code == 401
    assert not next(configured.workspace.glob("quarantine/*/ball_red.json")).read_text().count('"decision"')


def test_pages_render_for_a_signed_in_user(airflow_app, configured: CatalogRun):
    auth = _token("viewer", "vera")
    catalog = airflow_app.get("/image-catalog/", headers=auth)
    assert catalog.status_code == 200 and configured.run_key in catalog.text and "signed in as vera" in catalog.text
    run = airflow_app.get(f"/image-catalog/runs/{configured.run_key}", headers=auth)
    assert all(f'id="{anchor}"' in run.text for anchor in ("cost", "edit", "quality"))
    assert airflow_app.get("/image-catalog/runs/..%2F..%2Fetc", headers=auth).status_code == 404
    review = airflow_app.get("/image-catalog/review", headers=auth)
    assert review.text.count('class="card"') == 3 and "/image-catalog/files/source/ball_red.png" in review.text
    audit = airflow_app.get("/image-catalog/audit", params={"q": "jar_honey"}, headers=auth)
    assert "matched by sku" in audit.text and "<script" not in audit.text
    escaped = airflow_app.get("/image-catalog/audit", params={"q": "<script>alert(1)</script>"}, headers=auth)
    assert "<script>alert" not in escaped.text and "&lt;script&gt;" in escaped.text


def test_files_are_served_only_from_the_storage_roots(airflow_app, configured: CatalogRun, tmp_path: Path):
    auth = _token("viewer", "vera")
    report = airflow_app.get(f"/image-catalog/files/work/runs/{configured.run_key}/report.html", headers=auth)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "sandbox" in report.headers["content-security-policy"]
    assert airflow_app.get("/image-catalog/files/source/ball_red.png", headers=auth).content[:4] == b"\x89PNG"
    (configured.workspace / "leak").symlink_to("/etc/passwd")
    for path in ("work/../../../../etc/passwd", "work/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "work/%252e%252e/%252e%252e/etc/passwd", "work//etc/passwd", "work/%2Fetc%2Fpasswd",
                 "work/leak", "etc/passwd", "published/../work/state/published_manifest.json"):
        response = airflow_app.get(f"/image-catalog/files/{path}", headers=auth)
        assert b"root:" not in response.content, path
        # a literal ".." is resolved by the HTTP client before sending (the browser test sends it raw)
        assert "/../" in f"/{path}" or response.status_code in (400, 404), path


def test_deciding_needs_review_rights_and_is_recorded(airflow_app, configured: CatalogRun):
    target = f"/image-catalog/review/{configured.run_key}/can_soda"
    refused = airflow_app.post(target, data={"decision": "approve"}, headers=_token("viewer", "vera"))
    assert refused.status_code == 403
    reviewer = _token("op", "olga")
    assert airflow_app.post(target, data={"decision": "maybe"}, headers=reviewer).status_code == 400
    done = airflow_app.post(target, data={"decision": "reject", "note": "label cut off"}, headers=reviewer,
                            follow_redirects=False)
    assert done.status_code == 303 and "can_soda+rejected+by+olga" in done.headers["location"]
    record = json.loads(next(configured.workspace.glob("quarantine/*/can_soda.json")).read_text())
    assert record["review"] == {**record["review"], "decision": "rejected", "by": "olga", "note": "label cut off"}
    again = airflow_app.post(target, data={"decision": "approve"}, headers=reviewer, follow_redirects=False)
    assert "error=" in again.headers["location"] and not (configured.published / "can_soda.jpg").exists()


def test_extra_links_point_at_the_run_page_sections():
    from airflow_image_catalog.links.run_page import (
        CostReportLink,
        EditReportLink,
        QualityReportLink,
        run_page_url,
    )
    from airflow_image_catalog.operators.cost_check import CostCheckOperator
    from airflow_image_catalog.operators.image_edit import ImageEditOperator
    from airflow_image_catalog.operators.quality_gate import QualityGateOperator

    class Key:
        run_id = "scheduled__2026-11-26T00:00:00+00:00"

    for operator, link, anchor in ((CostCheckOperator, CostReportLink, "cost"), (ImageEditOperator, EditReportLink, "edit"),
                                   (QualityGateOperator, QualityReportLink, "quality")):
        assert [type(x) for x in operator.operator_extra_links] == [link]
        assert link().get_link(None, ti_key=Key()) == \
            f"/image-catalog/runs/scheduled__2026-11-26T00_00_00_00_00#{anchor}"
    assert run_page_url("manual__x") == "/image-catalog/runs/manual__x"


def test_a_waiting_review_run_is_answered_through_its_human_in_the_loop_step(airflow_app, configured: CatalogRun):
    """catalog_review parks on its human-in-the-loop step; the review page shows that run's images as one
    form and its answer resumes the run (the run publishes and records the decisions, as from the Airflow UI)."""
    import threading
    import time

    from airflow_image_catalog.pipeline.quality.review import REJECT_ALL
    from tests.dags.test_catalog_review import _answer_when_asked, _review_dag, _warm_up_orm

    dag = _review_dag()
    _warm_up_orm()
    reviewer, outcome = _token("admin", "rita"), {}

    def answer() -> None:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                page = airflow_app.get("/image-catalog/review", headers=reviewer)
                if 'action="/image-catalog/review/hitl"' in page.text:
                    run_id = page.text.split('name="run_id" value="', 1)[1].split('"', 1)[0]
                    assert page.text.count('name="approve_ids"') == 3 and "Approve</button>" not in page.text
                    response = airflow_app.post("/image-catalog/review/hitl", headers=reviewer, follow_redirects=False,
                                                data={"dag_id": "catalog_review", "run_id": run_id,
                                                      "task_id": "review_quarantine", "approve_ids": ["jar_honey"],
                                                      "note": "honey label reads fine"})
                    outcome["location"] = response.headers.get("location", "")
                    if "flash=" in outcome["location"]:
                        return
            except Exception as exc:  # SQLite is shared with the run in the main thread: retried
                outcome["error"] = repr(exc)
                outcome["page"] = locals().get("page") and page.text[-1500:]
            time.sleep(0.3)

    def answer_or_unpark() -> None:
        answer()
        # Then watch the task finish: a recorded answer that the park transition overwrote (SQLite has no row
        # locks) is handed to the task again, and without any answer the run is rejected so the test fails
        # instead of waiting forever.
        _answer_when_asked("catalog_review", [REJECT_ALL], {"approve_ids": "", "note": ""}, [], deadline_s=90)

    responder = threading.Thread(target=answer_or_unpark, daemon=True)
    responder.start()
    dagrun = dag.test(run_conf={"workspace": str(configured.workspace), "published": str(configured.published)})
    responder.join(timeout=30)
    assert "flash=" in outcome.get("location", ""), outcome
    assert dagrun.state == "success"
    records = {p.stem: json.loads(p.read_text()) for p in configured.workspace.glob("quarantine/*/*.json")}
    assert {k: r["review"]["decision"] for k, r in records.items()} == {
        "jar_honey": "approved", "ball_red": "rejected", "can_soda": "rejected"}
    assert records["jar_honey"]["review"]["by"] == "rita"
    assert records["jar_honey"]["review"]["note"] == "honey label reads fine"
    assert [p.name for p in configured.published.iterdir()] == ["jar_honey.jpg"]


def test_before_images_come_from_the_run_that_read_them(airflow_app, configured: CatalogRun, monkeypatch):
    """No ``sources`` configured: the review queue still shows each image before its edit, served from
    the run's own source root for that run's images only; nothing else there is reachable."""
    monkeypatch.setenv("AIRFLOW__IMAGE_CATALOG__SOURCES", "")
    (configured.source / "not_in_the_run.png").write_bytes(b"\x89PNG private")
    auth = _token("viewer", "vera")
    review = airflow_app.get("/image-catalog/review", headers=auth)
    assert "not under a served root" not in review.text
    before = f"/image-catalog/files/run-source/{configured.run_key}/ball_red"
    assert f'src="{before}"' in review.text
    image = airflow_app.get(before, headers=auth)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG" and "sandbox" in image.headers[
        "content-security-policy"]
    assert airflow_app.get(before).status_code in (401, 403)  # behind the same session as every page
    for refused in (f"{configured.run_key}/not_in_the_run", f"{configured.run_key}/..%2Fnot_in_the_run.png",
                    f"{configured.run_key}/%2e%2e", "..%2F..%2Fetc/passwd", "missing_run/ball_red",
                    f"{configured.run_key}/ball_red/extra"):
        response = airflow_app.get(f"/image-catalog/files/run-source/{refused}", headers=auth)
        assert response.status_code == 404 and b"private" not in response.content, refused
    original = configured.source / "ball_red.png"  # the session's shared source: put back afterwards
    kept = original.read_bytes()
    original.unlink()
    original.symlink_to("/etc/passwd")  # swapped for a link out of the root
    try:
        assert airflow_app.get(before, headers=auth).status_code == 404
    finally:
        original.unlink()
        original.write_bytes(kept)
        (configured.source / "not_in_the_run.png").unlink()


def test_links_into_airflow_leave_the_plugin_frame(airflow_app, configured: CatalogRun):
    """The pages are embedded in the Airflow UI's iframe: a link to an Airflow page replaces the whole
    window (target _top) instead of nesting a second Airflow UI inside the frame."""
    import re

    auth = _token("viewer", "vera")
    pages = [airflow_app.get(f"/image-catalog/runs/{configured.run_key}", headers=auth).text,
             airflow_app.get("/image-catalog/audit", params={"q": "jar_honey"}, headers=auth).text]
    links = [m for page in pages for m in re.findall(r'<a href="(/dags/[^"]*)"([^>]*)>', page)]
    assert len(links) >= 3  # run in Airflow; each audit row's run and task
    assert all('target="_top"' in attributes for _, attributes in links), links
