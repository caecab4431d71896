"""Resilience shared by every HTTP backend: retries, timeouts, a client-side limiter, error mapping.

Backends are written *sans-IO*: a backend's ``plan`` is a generator that yields
:class:`Request` (or :class:`Wait`) objects and receives :class:`httpx.Response`
objects back, then returns its result. :class:`HttpTransport` drives a plan with
a sync ``httpx.Client`` (:meth:`HttpTransport.run`) or an async
``httpx.AsyncClient`` (:meth:`HttpTransport.arun`), so the retry, limiter and
error rules live here once:

- retries (tenacity) with exponential backoff and jitter on 408/409/429/5xx and
  on connection errors and timeouts, honouring ``retry-after-ms`` / ``retry-after``
  (seconds or an HTTP date, capped by ``max_retry_after``);
- no retry for other 4xx: the provider's error code and message become a final
  :class:`~airflow_image_catalog.backends.base.EditError`;
- per-request timeouts;
- a client-side limiter: requests per minute (aiolimiter) and in-flight
  concurrency, paused when ``x-ratelimit-remaining-requests`` reaches 0 until
  ``x-ratelimit-reset-requests`` has passed;
- possibly billed attempts: a paid request (``Request.billed_step``) whose body was sent whole
  and whose answer was lost is noted in the image's scope (:func:`idempotency_scope`), so the
  pipeline books it in the ledger as *possibly billed* (see docs/backends.md "Billing safety").

API keys live only in the per-request auth headers: never in messages, logs or reprs.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from airflow_image_catalog.backends.base import EditError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True)
class HttpSettings:
    """Transport settings; every field can be set in the connection's extras.

    :param base_url: the provider's API root (the connection's host).
    :param timeout: seconds a request may take (read/write/pool).
    :param connect_timeout: seconds to connect.
    :param max_attempts: attempts per request, the first included.
    :param backoff_initial: first backoff in seconds (doubles per retry).
    :param backoff_max: longest backoff in seconds.
    :param backoff_jitter: up to this many random seconds added to each backoff.
    :param max_retry_after: cap on a provider's ``retry-after`` in seconds.
    :param requests_per_minute: client-side request rate (0 = unlimited).
    :param max_concurrency: requests in flight at once.
    :param poll_interval: seconds between polls of an asynchronous job.
    :param poll_timeout: seconds an asynchronous job may take before it is cancelled.
    """

    base_url: str
    timeout: float = 600.0  # the official openai SDK's default; real edits take up to ~2 minutes
    connect_timeout: float = 10.0
    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_jitter: float = 1.0
    max_retry_after: float = 120.0
    requests_per_minute: float = 0.0
    max_concurrency: int = 8
    poll_interval: float = 2.0
    poll_timeout: float = 600.0

    @classmethod
    def from_extras(cls, base_url: str, extras: dict[str, Any]) -> HttpSettings:
        kwargs: dict[str, Any] = {"base_url": base_url.rstrip("/")}
        for f in fields(cls):
            if f.name != "base_url" and extras.get(f.name) not in (None, ""):
                kwargs[f.name] = int(extras[f.name]) if f.type == "int" else float(extras[f.name])
        return cls(**kwargs)


@dataclass
class Request:
    """One HTTP request a backend plan wants sent.

    :param auth: send the provider's auth headers (False for pre-signed result URLs
        on other hosts, which must never see the API key).
    """

    method: str
    url: str
    op: str = ""
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry a bearer token
    auth: bool = True
    timeout: float | None = None
    #: HTTP statuses that answer this request for good (Firefly's 409 on cancel: the job already ended)
    final_statuses: frozenset[int] = frozenset()
    #: the recipe step this request pays for (the provider charges when it does the work); None: free
    billed_step: str | None = None


@dataclass
class PaidScope:
    """One image's paid requests: their idempotency keys and the attempts that may have been billed.

    ``possibly_billed`` holds one dict per attempt of a paid request whose body was sent whole and
    whose answer was lost (``step``, ``op``, ``attempt``, ``reason``, ``idempotency_key``): the
    provider may have done, and billed, the work. An answer that says it is a replay of the same key
    (``idempotent-replayed: true``) proves the work was billed once, so its lost attempts are dropped.
    """

    base: str
    sent: int = 0
    possibly_billed: list[dict[str, Any]] = field(default_factory=list)

    def next_key(self) -> str:
        self.sent += 1
        return f"{self.base}-{self.sent}"


_IDEMPOTENCY: ContextVar[PaidScope | None] = ContextVar("image_edit_idempotency", default=None)


@contextmanager
def idempotency_scope(base: str) -> Iterator[PaidScope]:
    """Number the paid requests (authenticated POSTs) sent inside with ``Idempotency-Key: <base>-<n>``.

    ``base`` comes from the image's cache key, and a backend's plan sends the same requests
    in the same order for the same inputs, so a rerun after a crash sends the same keys:
    a provider or gateway that honours them (the local edit service does) replays the
    first answer instead of doing, and billing, the work twice. Every retry of one request
    reuses its key. Scopes follow asyncio tasks (a ContextVar), so concurrent images never mix.
    The scope yielded collects the possibly billed attempts (:class:`PaidScope`).
    """
    scope = PaidScope(base)
    token = _IDEMPOTENCY.set(scope)
    try:
        yield scope
    finally:
        _IDEMPOTENCY.reset(token)


def _idempotency_headers(req: Request) -> dict[str, str]:
    scope = _IDEMPOTENCY.get()
    if scope is None or req.method != "POST" or not req.auth or "Idempotency-Key" in req.headers:
        return {}
    return {"Idempotency-Key": scope.next_key()}


#: transport errors raised while reading the answer: the request's body had been sent whole, so the provider
#: may have done (and billed) the work. Connect and write errors mean it never had the whole request.
ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)
REPLAYED_HEADER = "idempotent-replayed"


def _note_possibly_billed(req: Request, provider: str, headers: dict[str, str], attempt: int, reason: str) -> None:
    """Note an attempt of a paid request that may have been billed without its answer reaching us."""
    if req.billed_step is None:
        return
    key = headers.get("Idempotency-Key")
    log.warning("%s %s: attempt %d %s after its body was sent: possibly billed (booked as such)", provider,
                req.op, attempt, reason)
    scope = _IDEMPOTENCY.get()
    if scope is not None:
        scope.possibly_billed.append({"step": req.billed_step, "op": req.op, "attempt": attempt,
                                      "reason": reason, "idempotency_key": key})


def _note_replayed(req: Request, headers: dict[str, str], response: httpx.Response) -> None:
    """A replay of the same key: the lost attempts of this request were the one billed call, not two."""
    scope, key = _IDEMPOTENCY.get(), headers.get("Idempotency-Key")
    if scope is None or key is None or response.headers.get(REPLAYED_HEADER, "").lower() != "true":
        return
    scope.possibly_billed[:] = [mark for mark in scope.possibly_billed if mark["idempotency_key"] != key]


@dataclass
class Wait:
    """A plan asks to wait (between polls of an asynchronous job)."""

    seconds: float


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """``6m0s``, ``1s``, ``250ms``, ``1h2m3.5s`` or plain seconds -> seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(value) * scale[unit] for value, unit in parts)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, then ``retry-after``."""
    if "retry-after-ms" in headers:
        with contextlib.suppress(ValueError):
            return max(float(headers["retry-after-ms"]) / 1000.0, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    return None


def _validation_errors(detail: object) -> str:
    """FastAPI's 422 ``detail`` list (BFL's ``HTTPValidationError``) as ``field: message; ...``."""
    if not isinstance(detail, list):
        return ""
    parts = [f"{'.'.join(str(p) for p in (e.get('loc') or [])[1:]) or 'body'}: {e.get('msg')}"
             for e in detail if isinstance(e, dict) and e.get("msg")]
    return "; ".join(parts)[:300]


def error_details(response: httpx.Response) -> tuple[str, str]:
    """The provider's error code and message, from the documented error shapes.

    OpenAI ``{"error": {"code", "type", "message"}}``, BFL ``{"detail": ...}`` (a string, or FastAPI's
    list of ``{"loc", "msg", "type"}`` on a 422; throttled,
    ``{"error": "rate_limit_exceeded", "message"}``), Firefly ``{"error_code", "message"}``,
    Recraft ``{"code", "message"}``.
    """
    code, message = f"http_{response.status_code}", response.reason_phrase or ""
    try:
        body = response.json()
    except ValueError:
        return code, (response.text[:300] or message)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, str):
            return (err, body["message"]) if isinstance(body.get("message"), str) else (code, err)
        if isinstance(err, dict):
            code = str(err.get("code") or err.get("error_code") or err.get("type") or code)
            detail = err.get("message") or err.get("detail") or message
            message = detail if isinstance(detail, str) else _validation_errors(detail) or str(detail)[:300]
    return code, message


#: the account cannot pay (402): nothing is wrong with the image, so it is not retried now (every
#: request would fail the same) but stays retryable for a rerun once the account is topped up
OUT_OF_CREDITS = 402
#: the code every "cannot pay" answer is booked under (the edit task fails its chunk at once on it)
CANNOT_PAY = "insufficient_credits"
#: OpenAI answers an account out of credits or over a spend limit with 429, not 402: ``type``
#: ``insufficient_quota`` and one of these ``code`` values. Its error-codes guide
#: (developers.openai.com/docs/guides/error-codes: "429 - You exceeded your current quota ... You have
#: run out of credits or hit your maximum monthly spend"); the codes and "retrying ... won't restore API
#: access" as quoted by Microsoft's Dev Proxy page "OpenAI insufficient quota" (learn.microsoft.com).
QUOTA_CODES = frozenset({"insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
                         "project_spend_limit_exceeded", "organization_usage_limit_exceeded"})


def _out_of_quota(response: httpx.Response) -> bool:
    """A 429 that is not throttling: the account's credits or spend limit are exhausted."""
    if response.status_code != 429:
        return False
    try:
        err = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(err, dict) and bool({err.get("type"), err.get("code")} & QUOTA_CODES)


def raise_for_status(response: httpx.Response, provider: str, op: str) -> None:
    """Map an HTTP error to an :class:`EditError` (retryable or final)."""
    if response.status_code < 400:
        return
    code, message = error_details(response)
    if response.status_code == OUT_OF_CREDITS and code == "http_402":  # BFL: {"detail": ...}
        code = CANNOT_PAY
    retryable = is_retryable_status(response.status_code) or response.status_code == OUT_OF_CREDITS
    # the server's own word wins, as the official openai SDK obeys it (_base_client._should_retry)
    should_retry = response.headers.get("x-should-retry", "").strip().lower()
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    if _out_of_quota(response):  # not retried now (no wait restores it), retryable by a rerun after a top-up
        code, message, retryable = CANNOT_PAY, f"({code}) {message}", True
    raise EditError(
        f"{provider} {op}: HTTP {response.status_code} {code}: {message}".replace("  ", " "),
        retryable=retryable,
        code=code,
        status=response.status_code,
        retry_after=retry_after(response.headers),
    )


def check_json_body(response: httpx.Response, provider: str, op: str) -> None:
    """A success that says it is JSON must parse: a damaged answer is retried (with the same
    ``Idempotency-Key``, so a provider that stored the intact answer replays it, unbilled)
    instead of failing the image with a decoder traceback."""
    if "json" not in response.headers.get("content-type", ""):
        return
    try:
        response.json()
    except ValueError as exc:
        raise EditError(f"{provider} {op}: HTTP {response.status_code} with a malformed JSON body "
                        f"({len(response.content)} bytes: {exc})", retryable=True, code="bad_response",
                        status=response.status_code) from None


class Limiter:
    """Client-side limits: requests per minute and in-flight concurrency.

    Async callers share an ``aiolimiter.AsyncLimiter`` and an ``asyncio.Semaphore``
    (made per event loop); sync callers a semaphore and an even pacing. Both pause
    while the provider says no requests remain (``x-ratelimit-*`` headers).
    """

    def __init__(self, requests_per_minute: float = 0.0, max_concurrency: int = 8):
        self.requests_per_minute = requests_per_minute
        self.max_concurrency = max(1, int(max_concurrency))
        self._pause_until = 0.0
        self._billed_pause_until = 0.0  # BFL: no task slot left, new tasks wait
        self._sync_slots = threading.BoundedSemaphore(self.max_concurrency)
        self._sync_lock = threading.Lock()
        self._sync_next = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async: tuple[Any, asyncio.Semaphore] | None = None

    def observe(self, headers: httpx.Headers, max_pause: float = 120.0) -> None:
        """Pause while the provider says nothing remains.

        OpenAI: ``x-ratelimit-remaining-requests`` / ``-tokens`` with ``x-ratelimit-reset-*`` durations
        (``6m0s``): every request pauses. BFL: ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (epoch
        seconds; black-forest-labs/skills ``bfl-api/references/rate-limiting.md``), counting tasks in
        flight: only paid requests (new tasks) pause, polls and downloads go on (they end tasks).
        A pause is capped at ``max_pause`` seconds.
        """
        for unit in ("requests", "tokens", None):
            name = f"x-ratelimit-remaining-{unit}" if unit else "x-ratelimit-remaining"
            remaining = headers.get(name)
            if remaining is None:
                continue
            with contextlib.suppress(ValueError):
                if int(float(remaining)) > 0:
                    continue
                reset = headers.get(f"x-ratelimit-reset-{unit}" if unit else "x-ratelimit-reset")
                seconds = min(_reset_seconds(reset) or 1.0, max_pause)
                until = time.monotonic() + seconds
                if unit is None:
                    self._billed_pause_until = max(self._billed_pause_until, until)
                else:
                    self._pause_until = max(self._pause_until, until)
                log.info("provider rate limit on %s reached: pausing %s for %.2fs", unit or "tasks in flight",
                         "new tasks" if unit is None else "requests", seconds)

    def _pause(self, billed: bool = False) -> float:
        until = max(self._pause_until, self._billed_pause_until) if billed else self._pause_until
        return max(until - time.monotonic(), 0.0)

    @contextlib.contextmanager
    def slot(self, billed: bool = False):
        if self.requests_per_minute > 0:
            with self._sync_lock:
                now = time.monotonic()
                delay = max(self._sync_next - now, 0.0)
                interval = 60.0 / self.requests_per_minute  # a late wake-up keeps its slot (see _async_parts)
                self._sync_next = max(self._sync_next, now - interval) + interval
            time.sleep(delay)
        time.sleep(self._pause(billed))
        with self._sync_slots:
            yield

    def _async_parts(self) -> tuple[Any, asyncio.Semaphore]:
        from aiolimiter import AsyncLimiter

        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            # one request per 60/rpm seconds on average, the same as the sync path. A bucket of two, not one:
            # with one, every wake-up the event loop delivers late loses its lateness for good (make bench: ~2 %
            # of the rate over 125 requests); the second token takes it back. Bursts stay at two requests.
            rate = AsyncLimiter(2, 120.0 / self.requests_per_minute) if self.requests_per_minute > 0 else None
            self._loop, self._async = loop, (rate, asyncio.Semaphore(self.max_concurrency))
        return self._async

    @contextlib.asynccontextmanager
    async def aslot(self, billed: bool = False):
        rate, slots = self._async_parts()
        async with slots:
            if rate is not None:
                await rate.acquire()
            await asyncio.sleep(self._pause(billed))
            yield


def _reset_seconds(value: str | None) -> float | None:
    """A reset header as seconds from now: a duration (``1s``, ``6m0s``) or an epoch timestamp (BFL)."""
    seconds = parse_duration(value)
    if seconds is not None and seconds > 1e9:  # an epoch timestamp, not a duration
        return max(seconds - time.time(), 0.0)
    return seconds


class TaskSlots:
    """Provider tasks in flight (submitted, not yet ended): BFL limits these, not HTTP requests.

    A task holds its slot from submission until its result is in hand (or it failed), so a chunk
    with many images and short polls never has more tasks out than the provider admits. One
    ``threading.BoundedSemaphore`` for sync callers and one ``asyncio.Semaphore`` per event loop.
    """

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._sync = threading.BoundedSemaphore(self.limit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async: asyncio.Semaphore | None = None

    @contextlib.contextmanager
    def slot(self):
        with self._sync:
            yield

    @contextlib.asynccontextmanager
    async def aslot(self):
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            self._loop, self._async = loop, asyncio.Semaphore(self.limit)
        async with self._async:
            yield


class HttpTransport:
    """Sends a backend's requests with the shared retry, timeout and limiter rules.

    :param provider: name used in messages (``openai``, ``bfl``, ...).
    :param settings: :class:`HttpSettings`.
    :param auth_headers: headers that carry the API key (sent only when ``Request.auth``).
    :param headers: other headers for every request to the provider.
    :param params: query parameters for every authenticated request (Azure's ``api-version``).
    """

    def __init__(
        self,
        provider: str,
        settings: HttpSettings,
        *,
        auth_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ):
        self.provider = provider
        self.settings = settings
        self._auth_headers = dict(auth_headers or {})
        self._headers = dict(headers or {})
        self._params = dict(params or {})
        self.limiter = Limiter(settings.requests_per_minute, settings.max_concurrency)
        self._backoff = wait_exponential_jitter(multiplier=settings.backoff_initial, max=settings.backoff_max,
                                                jitter=settings.backoff_jitter)
        self._client: httpx.Client | None = None
        self._aclients: dict[int, httpx.AsyncClient] = {}

    def __repr__(self) -> str:  # never show headers: they hold the key
        return f"HttpTransport({self.provider!r}, {self.settings.base_url!r})"

    # -- clients -----------------------------------------------------------------------
    def _timeout(self, seconds: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(seconds or self.settings.timeout, connect=self.settings.connect_timeout)

    def _client_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.settings.base_url + "/", "timeout": self._timeout(), "headers": self._headers}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs())
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._aclients:
            self._aclients[loop_id] = httpx.AsyncClient(**self._client_kwargs())
        return self._aclients[loop_id]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        client = self._aclients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()

    # -- one request ---------------------------------------------------------------------
    def _request_kwargs(self, req: Request, extra_headers: dict[str, str]) -> dict[str, Any]:
        headers = {**(self._auth_headers if req.auth else {}), **req.headers, **extra_headers}
        params = {**(self._params if req.auth else {}), **(req.params or {})} or None
        url = req.url.lstrip("/") if "://" not in req.url else req.url
        kwargs: dict[str, Any] = {"headers": headers, "params": params, "timeout": self._timeout(req.timeout)}
        for name in ("json", "data", "files", "content"):
            if getattr(req, name) is not None:
                kwargs[name] = getattr(req, name)
        return {"method": req.method, "url": url, **kwargs}

    def _transport_error(self, req: Request, exc: httpx.TransportError) -> EditError:
        if isinstance(exc, httpx.TimeoutException):
            return EditError(f"{self.provider} {req.op}: timed out ({type(exc).__name__})",
                             retryable=True, code="timeout")
        return EditError(f"{self.provider} {req.op}: connection error ({type(exc).__name__}: {exc})",
                         retryable=True, code="connection_error")

    def _checked(self, req: Request, response: httpx.Response, extra: dict[str, str], attempt: int) -> httpx.Response:
        self.limiter.observe(response.headers, self.settings.max_retry_after)
        try:
            raise_for_status(response, self.provider, req.op)
        except EditError as exc:
            if exc.status in req.final_statuses:
                exc.retryable = False
            raise
        _note_replayed(req, extra, response)
        try:
            check_json_body(response, self.provider, req.op)
        except EditError:  # a success whose body broke on the way: the work was done
            _note_possibly_billed(req, self.provider, extra, attempt, "answer damaged")
            raise
        return response

    def _lost(self, req: Request, exc: httpx.TransportError, extra: dict[str, str], attempt: int) -> EditError:
        if isinstance(exc, ANSWER_LOST):
            _note_possibly_billed(req, self.provider, extra, attempt, f"answer lost ({type(exc).__name__})")
        return self._transport_error(req, exc)

    def _wait(self, state) -> float:
        exc = state.outcome.exception()
        if getattr(exc, "retry_after", None) is not None:
            return min(exc.retry_after, self.settings.max_retry_after)
        return self._backoff(state)

    def _before_sleep(self, state) -> None:
        log.warning("%s: attempt %d failed (%s); retrying in %.2fs", self.provider, state.attempt_number,
                    state.outcome.exception(), state.next_action.sleep if state.next_action else 0.0)

    def _retry_kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.settings.max_attempts),
            "wait": self._wait,
            "retry": retry_if_exception(lambda exc: isinstance(exc, EditError) and exc.retryable
                                        and exc.status != OUT_OF_CREDITS and exc.code != CANNOT_PAY),
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def send(self, req: Request) -> tuple[httpx.Response, int]:
        """Send with retries; returns the response and the number of attempts."""
        attempts, extra = 0, _idempotency_headers(req)

        def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            with self.limiter.slot(req.billed_step is not None):
                try:
                    response = self.client.request(**self._request_kwargs(req, extra))
                except httpx.TransportError as exc:
                    raise self._lost(req, exc, extra, attempts) from None
            return self._checked(req, response, extra, attempts)

        try:
            return Retrying(**self._retry_kwargs())(once), attempts
        except EditError as exc:
            exc.attempts = attempts
            raise

    async def asend(self, req: Request) -> tuple[httpx.Response, int]:
        attempts, extra = 0, _idempotency_headers(req)

        async def once() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            async with self.limiter.aslot(req.billed_step is not None):
                try:
                    response = await self.aclient.request(**self._request_kwargs(req, extra))
                except httpx.TransportError as exc:
                    raise self._lost(req, exc, extra, attempts) from None
            return self._checked(req, response, extra, attempts)

        try:
            return await AsyncRetrying(**self._retry_kwargs())(once), attempts
        except EditError as exc:
            exc.attempts = attempts
            raise

    # -- whole plans ---------------------------------------------------------------------
    # A failed request is thrown into the plan, which may handle it (e.g. an expired
    # result URL) or let it propagate; attempts are summed over the whole plan.
    def run(self, plan: Generator[Request | Wait, Any, Any]) -> Any:
        """Drive a plan with the sync client (the shared driver never suspends in this mode)."""
        driver = self._drive(plan, blocking=True)
        try:
            driver.send(None)
        except StopIteration as done:
            return done.value
        raise RuntimeError("blocking plan driver suspended")  # pragma: no cover

    async def arun(self, plan: Generator[Request | Wait, Any, Any]) -> Any:
        """Drive a plan with the async client."""
        return await self._drive(plan, blocking=False)

    async def _drive(self, plan: Generator[Request | Wait, Any, Any], *, blocking: bool) -> Any:
        attempts, reply, error = 0, None, None
        try:
            while True:
                step = _advance(plan, reply, error, attempts)
                reply, error = None, None
                if isinstance(step, Wait):
                    time.sleep(step.seconds) if blocking else await asyncio.sleep(step.seconds)
                    continue
                try:
                    reply, n = self.send(step) if blocking else await self.asend(step)
                    attempts += n
                except EditError as exc:
                    attempts += exc.attempts or 0
                    error = exc
        except StopIteration as stop:
            return _finish(stop.value, attempts)
        finally:
            plan.close()


def poll_plan(poll: Request, status_of, settings: HttpSettings, what: str) -> Generator[Any, Any, Any]:
    """Poll an asynchronous job (sub-plan): ``status_of(response)`` until it is not ``pending``.

    Waits ``poll_interval`` between polls; after ``poll_timeout`` fails ``timeout`` (retryable).
    """
    deadline = time.monotonic() + settings.poll_timeout
    while (status := status_of((yield poll).json())).state == "pending":
        if time.monotonic() > deadline:
            raise EditError(f"{what}: still pending after {settings.poll_timeout:.0f}s", retryable=True,
                            code="timeout")
        yield Wait(settings.poll_interval)
    return status


def _advance(plan: Generator, reply: Any, error: EditError | None, attempts: int) -> Any:
    try:
        return plan.throw(error) if error is not None else plan.send(reply)
    except EditError as exc:
        exc.attempts = attempts
        raise


def _finish(result: Any, attempts: int) -> Any:
    if hasattr(result, "attempts"):
        result.attempts = attempts
    return result


class PlanDriven:
    """``edit`` / ``aedit`` for backends that describe a recipe as a sans-IO ``plan``.

    The edit pipeline's *prepare* stage decodes every upload to a paid backend before the call
    (:func:`~airflow_image_catalog.pipeline.editing.stages.prepare_source`), so no backend pays for,
    or even sends, an image that cannot be read.
    """

    transport: HttpTransport

    def edit(self, source: bytes, recipe, context):
        return self.transport.run(self.plan(source, recipe, context))

    async def aedit(self, source: bytes, recipe, context):
        return await self.transport.arun(self.plan(source, recipe, context))
