"""Latency on the local edit service, and clients that give up: abandoned requests are never edited."""

from __future__ import annotations

import time

import httpx
import pytest

from airflow_image_catalog.tooling.service.server import main
from tests.fixtures.service import wait_until


def test_a_client_that_disconnects_during_latency_abandons_the_edit(service, edit):
    service.state.faults.add(kind="latency", seconds=5.0, path="/v1/images/edits")
    with pytest.raises(httpx.ReadTimeout):
        edit(key="gone", timeout=0.3)
    wait_until(lambda: service.stats()["abandoned"] == 1)
    assert service.stats()["performed"] == 0
    retried = edit(key="gone")  # the abandoned request stored nothing: the retry runs
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert (service.stats()["performed"], service.stats()["abandoned"]) == (1, 1)


def test_latency_s_slows_every_edit_route_but_not_polls(service, edit, bfl_submit):
    service.state.latency_s = 0.25
    began = time.monotonic()
    assert edit().status_code == 200
    assert time.monotonic() - began >= 0.25
    job = bfl_submit().json()
    began = time.monotonic()
    httpx.get(job["polling_url"], timeout=5)
    assert time.monotonic() - began < 0.25
    assert service.stats()["performed"] == 2


def test_cli_flags_configure_latency_and_enforcement(monkeypatch):
    seen = {}
    monkeypatch.setattr("uvicorn.Server.run", lambda server, sockets: seen.update(app=server.config.app))
    assert main(["--port", "0", "--latency", "1.5", "--enforce-rate-limit", "--rpm", "7", "--rate-quantum", "60"]) == 0
    state = seen["app"].state
    assert (state.latency_s, state.enforce_rate_limit, state.requests_per_minute, state.rate_quantum_s) == (1.5, True, 7, 60)
