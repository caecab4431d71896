"""The shared resilience layer against the local edit service's injected faults (real HTTP)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from airflow_image_catalog.backends.base import EditError
from airflow_image_catalog.backends.http import (
    HttpSettings,
    HttpTransport,
    Limiter,
    Request,
    parse_duration,
    retry_after,
)

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01, "max_attempts": 4, "timeout": 5}
PATH = "/v1/images/edits"


def transport(service, **extras) -> HttpTransport:
    settings = HttpSettings.from_extras(service.openai_base_url, {**FAST, **extras})
    return HttpTransport("openai", settings, auth_headers={"Authorization": "Bearer sk-secret-123"})


def edit_request() -> Request:
    from tests.fixtures.service import product_png

    return Request("POST", "images/edits", op="images.edit", data={"prompt": "warm golden look"},
                   files=[("image[]", ("p.png", product_png(), "image/png"))])


def test_durations_and_retry_after_headers():
    assert parse_duration("6m0s") == 360 and parse_duration("1s") == 1 and parse_duration("250ms") == 0.25
    assert parse_duration("1h2m3.5s") == 3723.5 and parse_duration("2.5") == 2.5 and parse_duration("") is None
    assert retry_after(httpx.Headers({"retry-after-ms": "150", "retry-after": "9"})) == 0.15
    assert retry_after(httpx.Headers({"retry-after": "3"})) == 3
    date = httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})  # in the past: now
    assert retry_after(date) == 0
    assert retry_after(httpx.Headers({})) is None


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        ({"kind": "status", "status": 429, "count": 2, "retry_after_ms": 20}, 3),
        ({"kind": "status", "status": 500, "count": 2}, 3),
        ({"kind": "status", "status": 503, "count": 1, "retry_after": "0"}, 2),
        ({"kind": "status", "status": 408, "count": 1}, 2),
        ({"kind": "status", "status": 409, "count": 1}, 2),
        ({"kind": "drop", "count": 2}, 3),
        ({"kind": "hang", "seconds": 1.0, "count": 1}, 2),
    ],
)
def test_transient_faults_are_retried_until_success(service, fault, attempts):
    service.state.faults.add(path=PATH, **fault)
    response, made = transport(service, timeout=0.5 if fault["kind"] == "hang" else 5).send(edit_request())
    assert response.status_code == 200 and response.json()["data"][0]["b64_json"]
    assert made == attempts == service.state.requests(f"POST {PATH}")


def test_retry_after_is_honoured(service):
    service.state.faults.add(kind="status", status=429, count=1, retry_after_ms=300, path=PATH)
    started = time.monotonic()
    transport(service).send(edit_request())
    assert time.monotonic() - started >= 0.3


def test_exhausted_retries_end_retryable_with_the_providers_code(service):
    service.state.faults.add(kind="status", status=503, count=-1, path=PATH)
    with pytest.raises(EditError) as info:
        transport(service, max_attempts=3).send(edit_request())
    err = info.value
    assert err.retryable and err.code == "service_unavailable" and err.status == 503 and err.attempts == 3
    assert service.state.requests(f"POST {PATH}") == 3


def test_out_of_credits_is_not_retried_but_stays_retryable_for_a_rerun(service):
    service.state.faults.add(path=PATH, kind="status", status=402)
    with pytest.raises(EditError) as info:
        transport(service).send(edit_request())
    assert info.value.retryable and info.value.code == "insufficient_credits" and info.value.attempts == 1
    assert service.state.requests(f"POST {PATH}") == 1


@pytest.mark.parametrize(("fault", "code"), [({"kind": "moderation"}, "moderation_blocked"),
                                             ({"kind": "status", "status": 400, "code": "invalid_image"},
                                              "invalid_image")])
def test_final_errors_are_not_retried(service, fault, code):
    service.state.faults.add(path=PATH, **fault)
    with pytest.raises(EditError) as info:
        transport(service).send(edit_request())
    assert not info.value.retryable and info.value.code == code and info.value.attempts == 1
    assert service.state.requests(f"POST {PATH}") == 1
    assert "sk-secret-123" not in str(info.value)


async def test_async_path_retries_the_same_way(service):
    service.state.faults.add(kind="status", status=429, count=2, retry_after_ms=10, path=PATH)
    t = transport(service)
    try:
        response, made = await t.asend(edit_request())
    finally:
        await t.aclose()
    assert response.status_code == 200 and made == 3 == service.state.requests(f"POST {PATH}")


def test_connection_refused_is_retryable(unused_tcp_port):
    settings = HttpSettings.from_extras(f"http://127.0.0.1:{unused_tcp_port}", {**FAST, "max_attempts": 2})
    with pytest.raises(EditError) as info:
        HttpTransport("openai", settings).send(Request("GET", "models", op="models"))
    assert info.value.retryable and info.value.code == "connection_error" and info.value.attempts == 2


def test_rate_limit_headers_pause_the_limiter():
    limiter = Limiter()
    limiter.observe(httpx.Headers({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}))
    assert limiter._pause() == 0
    limiter.observe(httpx.Headers({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms"}))
    assert 0.2 < limiter._pause() <= 0.25
    started = time.monotonic()
    with limiter.slot():
        pass
    assert time.monotonic() - started >= 0.2


def test_service_rate_limit_headers_slow_the_client(service):
    service.state.requests_per_minute = 1  # the second request sees remaining 0
    t = transport(service)
    try:
        t.send(Request("POST", "images/edits", op="x", data={}))
    except EditError:
        pass  # a 400 still carries the rate-limit headers
    assert t.limiter._pause() > 1
    service.state.requests_per_minute = 600


async def test_limiter_bounds_rate_and_concurrency():
    limiter = Limiter(requests_per_minute=1200, max_concurrency=2)  # one request per 50 ms
    active, peak, starts = 0, 0, []

    async def one():
        nonlocal active, peak
        async with limiter.aslot():
            starts.append(time.monotonic())
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.02)
            active -= 1

    await asyncio.gather(*(one() for _ in range(5)))
    assert peak <= 2
    assert starts[-1] - starts[0] >= 0.14  # 5 starts: a burst of 2 at most, then ~50 ms apart
    sync = Limiter(requests_per_minute=1200)
    began = time.monotonic()
    for _ in range(3):
        with sync.slot():
            pass
    assert time.monotonic() - began >= 0.045  # 3 slots: a burst of 2 at most, then 50 ms


def test_token_rate_limit_headers_pause_the_limiter_too():
    limiter = Limiter()
    limiter.observe(httpx.Headers({"x-ratelimit-remaining-requests": "40", "x-ratelimit-reset-requests": "1s",
                                   "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "300ms"}))
    assert 0.25 < limiter._pause() <= 0.3


@pytest.mark.parametrize(("status", "should_retry"), [(400, "true"), (503, "false"), (503, None), (400, None)])
def test_x_should_retry_is_obeyed_as_the_official_sdk_does(status, should_retry):
    """Same server, same script: our transport and openai.OpenAI() make the same number of attempts."""
    import openai
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from airflow_image_catalog.tooling.service.server import LoopbackServer

    seen = []

    async def models(request):
        seen.append(request.url.path)
        if len(seen) == 1:  # the first try of each client fails; a retry succeeds
            headers = {"retry-after-ms": "10", **({"x-should-retry": should_retry} if should_retry else {})}
            return JSONResponse({"error": {"message": "scripted", "type": "x", "code": "scripted"}},
                                status_code=status, headers=headers)
        return JSONResponse({"object": "list", "data": []})

    with LoopbackServer(Starlette(routes=[Route("/v1/models", models)])) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=2)
        try:
            client.models.list()
        except openai.APIStatusError:
            pass
        sdk_attempts = len(seen)
        seen.clear()  # our client meets the same script
        ours = HttpTransport("openai", HttpSettings.from_extras(f"{server.url}/v1", {**FAST, "max_attempts": 3}))
        try:
            ours.send(Request("GET", "models", op="models"))
        except EditError:
            pass
        assert len(seen) == sdk_attempts == (2 if should_retry == "true" or (status == 503 and not should_retry)
                                             else 1)


def test_the_default_timeout_is_the_official_sdks_and_outlasts_a_real_edit():
    """Real edits take up to about two minutes; a shorter default would time out paid work and retry it
    (possibly billed twice). The default read timeout is the openai SDK's own (``openai/_constants.py``)."""
    from openai._constants import DEFAULT_TIMEOUT

    settings = HttpSettings.from_extras("https://api.openai.com/v1", {})
    assert settings.timeout == DEFAULT_TIMEOUT.read == 600 and settings.timeout >= 4 * 120
    timeout = HttpTransport("openai", settings)._timeout()
    assert (timeout.read, timeout.write, timeout.pool) == (600, 600, 600) and timeout.connect == 10


def test_an_account_out_of_openai_quota_is_not_retried_but_stays_retryable_for_a_rerun(service):
    """OpenAI says "out of credits / over the spend limit" with 429 ``insufficient_quota``, not 402: no
    wait restores it, so it is not retried now, and it is booked as the account that cannot pay."""
    service.state.faults.add(path=PATH, kind="status", status=429, code="insufficient_quota")
    with pytest.raises(EditError) as info:
        transport(service).send(edit_request())
    assert info.value.code == "insufficient_credits" and info.value.retryable and info.value.attempts == 1
    assert "(insufficient_quota)" in str(info.value) and service.state.requests(f"POST {PATH}") == 1


@pytest.mark.parametrize(("error", "cannot_pay"), [
    ({"type": "insufficient_quota", "code": "credit_balance_exhausted"}, True),
    ({"type": "insufficient_quota", "code": "project_spend_limit_exceeded"}, True),
    ({"type": "insufficient_quota", "code": "insufficient_quota"}, True),
    ({"type": "requests", "code": "rate_limit_exceeded"}, False),  # throttling: retried after its wait
    ({"type": "tokens", "code": None}, False),
])
def test_quota_429s_are_told_from_throttling_429s(error, cannot_pay):
    from airflow_image_catalog.backends.http import raise_for_status

    response = httpx.Response(429, json={"error": {"message": "You exceeded your current quota", "param": None,
                                                   **error}})
    with pytest.raises(EditError) as info:
        raise_for_status(response, "openai", "images.edit")
    assert (info.value.code == "insufficient_credits") is cannot_pay and info.value.retryable


def test_a_wrong_key_is_final_and_never_named(service):
    """OpenAI's 401 "Incorrect API key provided" (error-codes guide): no retry can fix it."""
    service.state.api_key = "sk-the-right-one-456"
    with pytest.raises(EditError) as info:
        transport(service).send(edit_request())  # sends sk-secret-123
    assert (info.value.code, info.value.status, info.value.retryable, info.value.attempts) == (
        "invalid_api_key", 401, False, 1)
    assert "sk-secret-123" not in str(info.value) and "sk-the-right-one-456" not in str(info.value)
