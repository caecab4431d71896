"""End to end in a real browser: ``airflow api-server`` with the plugin, headless Debian Chromium.

The shared catalog_refresh run (tests/plugin/conftest.py) provides the data; the test logs in
through Airflow's own login page (SimpleAuthManager, a passwords file), opens the catalog page
(also inside the Airflow UI's navigation), follows an operator extra link, approves a quarantined
image on the review queue, checks the recorded decision (quarantine record, audit row, published
file) and finds it again in the audit search. Screenshots go to a temporary folder, or to
``$CATALOG_SCREENSHOTS`` (``CATALOG_SCREENSHOTS=docs/screenshots`` refreshes the README's).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.plugin.conftest import CatalogRun

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "reviewer", "catalog-review-pw"
SHOTS = Path(os.environ.get("CATALOG_SCREENSHOTS") or Path(tempfile.gettempdir()) / "catalog-screenshots")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium not installed (`make test` installs it with apt)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"api-server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"api-server did not answer {url} in {deadline_s} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def api_server(fresh_workspace: CatalogRun, tmp_path: Path):
    """``airflow api-server`` on a free loopback port, the plugin configured for the run's storage."""
    port = _free_port()
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {**os.environ, **fresh_workspace.env(),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    log = tmp_path / "api-server.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    with log.open("w") as out:
        # cwd outside the checkout: the package is found through its install, as in a deployment
        proc = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{port}/image-catalog/health", proc, log)
        yield f"http://127.0.0.1:{port}", fresh_workspace, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shot(page, name: str, *, full_page: bool = False) -> None:
    """A screenshot for the README, palette-reduced so the PNGs stay small."""
    from PIL import Image

    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=192, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _raw_get(base: str, path: str, cookie: str) -> tuple[int, bytes]:
    """A GET that sends ``path`` exactly as written (browsers and urllib normalise ``..`` away)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Cookie", f"_token={cookie}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_plugin_pages_in_headless_chromium(api_server):
    from playwright.sync_api import expect, sync_playwright

    base, run, log = api_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # no session: the plugin sends the browser to Airflow's login page, and back after it
            anonymous = browser.new_context()
            page = anonymous.new_page()
            page.goto(f"{base}/image-catalog/review")
            assert "/auth/login" in page.url
            assert anonymous.request.post(f"{base}/image-catalog/review/{run.run_key}/ball_red",
                                          form={"decision": "approve"}).status == 401
            anonymous.close()

            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(f"{base}/image-catalog/")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/image-catalog/", timeout=30_000)
            row = page.locator(f"tr[data-run='{run.run_key}']")
            expect(row).to_contain_text("marketplace_white_square")
            expect(row.locator("td.num").nth(4)).to_have_text("3")  # quarantined (after found, new or changed, edited, passed)
            expect(page.locator("#budget")).to_contain_text("of $5.00")
            _shot(page, "catalog", full_page=True)

            # the same page inside the Airflow UI, from its navigation
            page.goto(f"{base}/plugin/image-catalog")
            frame = page.frame_locator("iframe")
            expect(frame.locator(f"tr[data-run='{run.run_key}']")).to_be_visible(timeout=30_000)
            _shot(page, "catalog_in_airflow")

            # the quality gate's extra link (recorded by the task itself) opens its part of the run page
            token = next(c["value"] for c in context.cookies() if c["name"] == "_token")
            links = context.request.get(
                f"{base}/api/v2/dags/catalog_refresh/dagRuns/{run.run_id}/taskInstances/quality_gate/links"
                "?map_index=0").json()
            link = links.get("extra_links", links).get("Catalog report: quality") or pytest.fail(str(links))
            assert link.endswith(f"/image-catalog/runs/{run.run_key}#quality"), links
            page.goto(link if link.startswith("http") else base + link)
            expect(page.locator("#quality")).to_contain_text("pass rate")
            expect(page.locator("#cost")).to_contain_text("go")
            _shot(page, "run", full_page=True)
            report = context.request.get(base + page.locator("a", has_text="full HTML run report").get_attribute("href"))
            assert report.ok and "Catalog run" in report.text()
            assert "sandbox" in report.headers["content-security-policy"]

            # review queue: before/after, failed expectations; approve one image
            page.goto(f"{base}/image-catalog/review")
            card = page.locator("div.card[data-image='ball_red']")
            expect(card).to_contain_text("product_fill")
            expect(card.locator("img")).to_have_count(2)
            before = card.locator("img").first  # loading="lazy": scrolled to, then decode() waits for it and
            before.scroll_into_view_if_needed()  # rejects a broken one (naturalWidth alone raced the load)
            assert before.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
            _shot(page, "review_queue", full_page=True)
            card.locator("input[name=note]").fill("fill is fine for this shop")
            card.get_by_role("button", name="Approve").click()
            expect(page.locator("#flash")).to_contain_text("ball_red approved by reviewer")
            expect(page.locator("div.card[data-image='ball_red']")).to_have_count(0)
            expect(page.locator("tr[data-image='ball_red']")).to_contain_text("approved")
            _shot(page, "review_approved", full_page=True)

            # the decision is recorded: quarantine record, published file, audit row
            record = json.loads(next(run.workspace.glob("quarantine/*/ball_red.json")).read_text())
            assert record["review"]["decision"] == "approved" and record["review"]["by"] == USER
            assert record["review"]["note"] == "fill is fine for this shop"
            published = run.published / "ball_red.jpg"
            assert published.exists()
            from airflow_image_catalog.pipeline.publishing.audit import open_audit

            rows = open_audit(str(run.workspace)).execute(
                "SELECT event, reviewer, published_uri FROM audit WHERE image_id = 'ball_red' ORDER BY event").fetchall()
            assert [(event, reviewer) for event, reviewer, _ in rows] == [("approved", USER), ("quarantined", None)]

            # audit search by the published path: the image's whole trail
            page.goto(f"{base}/image-catalog/audit")
            page.fill("input[name=q]", str(published))
            page.get_by_role("button", name="Search").click()
            expect(page.locator("#found")).to_contain_text("matched by path")
            expect(page.locator(".audit-row[data-event='approved']")).to_contain_text("marketplace_white_square")
            page.fill("input[name=q]", "ball_red")
            page.get_by_role("button", name="Search").click()
            expect(page.locator(".audit-row")).to_have_count(2)
            _shot(page, "audit_search", full_page=True)

            # nothing outside the storage roots, however the path is spelled
            for path in ("/image-catalog/files/work/../../../../etc/passwd",
                         "/image-catalog/files/work/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                         "/image-catalog/files/work/%252e%252e/%252e%252e/etc/passwd",
                         "/image-catalog/files/work//etc/passwd",
                         "/image-catalog/files/etc/passwd"):
                status, body = _raw_get(base, path, token)
                assert status in (400, 404) and b"root:" not in body, (path, status)
            assert _raw_get(base, f"/image-catalog/files/published/{published.name}", token)[0] == 200
            context.close()
        finally:
            browser.close()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
