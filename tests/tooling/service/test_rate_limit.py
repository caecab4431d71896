"""Rate-limit enforcement on the local edit service: 429 beyond the minute's limit and beyond a burst of a
second's share of it (OpenAI quantizes its limits), with truthful headers."""

from __future__ import annotations

import time

import httpx


def test_requests_beyond_the_minute_are_refused_and_not_performed(service, edit, bfl_submit):
    service.state.requests_per_minute, service.state.enforce_rate_limit = 5, True
    service.state.rate_quantum_s = 60  # the minute only: 5 at once
    responses = [edit(key=f"k{i}") for i in range(8)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    for refused in responses[5:]:
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 0 < int(refused.headers["retry-after-ms"]) <= 60_000
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert 0 < float(refused.headers["x-ratelimit-reset-requests"].rstrip("s")) <= 60
    assert bfl_submit().status_code == 429  # BFL submits share the window
    assert edit(key="k0").headers["idempotent-replayed"] == "true"  # a replay is free: never rate limited
    assert httpx.get(f"{service.url}/v1/get_result", params={"id": "x"}).status_code == 200  # polls do not count
    numbers = service.stats()
    assert (numbers["performed"], numbers["rate_limited"]) == (5, 4)
    assert numbers["served"]["total"] == 11  # refused requests were served (answered), not performed


def test_without_enforcement_the_headers_report_but_never_refuse(service, edit):
    service.state.requests_per_minute = 2
    assert [edit().status_code for _ in range(3)] == [200] * 3
    assert service.stats()["rate_limited"] == 0


def test_a_burst_beyond_a_seconds_share_is_refused_though_the_minute_has_room(service, edit):
    """60/min enforced per second, as OpenAI quantizes its limits: one at once, then one a second."""
    service.state.requests_per_minute, service.state.enforce_rate_limit = 60, True
    first, second = edit(key="b0"), edit(key="b1")
    assert first.status_code == 200 and first.headers["x-ratelimit-reset-requests"].startswith(("1.000", "0.9"))
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
    assert second.headers["x-ratelimit-remaining-requests"] == "59"  # the minute is far from spent
    wait_ms = int(second.headers["retry-after-ms"])
    assert 0 < wait_ms <= 1000
    time.sleep(wait_ms / 1000 + 0.02)
    assert edit(key="b1").status_code == 200  # the retry-after was the truth
    service.state.reset()
    service.state.requests_per_minute, service.state.rate_quantum_s = 12, 25  # the share of 25 s: 5 at once
    assert [edit(key=f"c{i}").status_code for i in range(6)] == [200] * 5 + [429]


def test_a_client_paced_at_the_limit_is_never_refused(service, edit):
    service.state.requests_per_minute, service.state.enforce_rate_limit = 1200, True  # 20/s, 20 at once
    began = time.monotonic()
    for i in range(30):
        time.sleep(max(began + i * 0.05 - time.monotonic(), 0))
        assert edit(key=f"p{i}").status_code == 200
    assert service.stats()["rate_limited"] == 0
