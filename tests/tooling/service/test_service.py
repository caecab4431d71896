"""The local edit service itself: the documented command, counting, fault rules, rate-limit headers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from airflow_image_catalog.tooling.service.faults import Fault, FaultPlan, parse_fault
from airflow_image_catalog.tooling.service.server import served
from tests.fixtures.service import product_png


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_documented_command_serves_and_counts():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "airflow_image_catalog.tooling.service", "--port", str(port),
                             "--fault", "status:1,status=429,retry_after_ms=5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while True:
            try:
                stats = httpx.get(f"{url}/_service/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "service did not start"
                time.sleep(0.05)
        assert stats.json()["faults"][0]["status"] == 429
        files = [("image[]", ("p.png", product_png(), "image/png"))]
        first = httpx.post(f"{url}/v1/images/edits", data={"prompt": "warm"}, files=files, timeout=30)
        second = httpx.post(f"{url}/v1/images/edits", data={"prompt": "warm"}, files=files, timeout=30)
        assert first.status_code == 429 and first.headers["retry-after-ms"] == "5"
        assert second.status_code == 200 and second.json()["usage"]["total_tokens"] > 0
        assert served(url) == {"POST /v1/images/edits": 2, "total": 2}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fault_rules_are_counted_and_validated():
    plan = FaultPlan([Fault("status", count=2, path="/v1/images"), Fault("drop", count=-1, path="/v1/get")])
    assert [plan.take("/v1/images/edits", ("status",)) is not None for _ in range(3)] == [True, True, False]
    assert all(plan.take("/v1/get_result", ("drop",)) for _ in range(5))
    assert plan.take("/other", ("drop", "status")) is None
    assert parse_fault("hang:2,seconds=1.5,path=/v1") == Fault("hang", count=2, seconds=1.5, path="/v1")
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")


def test_rate_limit_headers_and_contract_errors(service):
    service.state.requests_per_minute = 2
    url = service.openai_base_url
    files = [("image[]", ("p.png", product_png(), "image/png"))]
    responses = [httpx.post(f"{url}/images/edits", data={"prompt": "warm", "size": "1000x1000"}, files=files)
                 for _ in range(2)]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["1", "0"]
    assert responses[0].status_code == 400 and responses[0].json()["error"]["code"] == "invalid_value"
    service.state.requests_per_minute = 600
    no_alpha = httpx.post(f"{url}/images/edits", data={"prompt": "warm"},
                          files=[*files, ("mask", ("m.png", product_png(), "image/png"))])
    assert no_alpha.json()["error"]["code"] == "invalid_value" and no_alpha.json()["error"]["param"] == "mask"
    fidelity = httpx.post(f"{url}/images/edits", data={"prompt": "warm", "input_fidelity": "high"}, files=files)
    assert fidelity.json()["error"]["param"] == "input_fidelity"
    assert service.state.requests() == 4
