"""Rate-limit enforcement on the local edit service: 429 beyond the window, with truthful headers."""

from __future__ import annotations

import httpx


def test_requests_beyond_the_window_are_refused_and_not_performed(service, edit, bfl_submit):
    service.state.requests_per_minute, service.state.enforce_rate_limit = 5, True
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
