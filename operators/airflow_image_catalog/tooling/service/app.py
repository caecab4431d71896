"""The local edit service's ASGI app: OpenAI images/edits, Files + Batch, and BFL submit/poll.

Backed by the local engine; answers with realistic ``usage`` and ``x-ratelimit-*``
headers; counts every request it serves and every edit it performs; injects the faults
of its :class:`FaultPlan`.

A request outside ``/_service/`` passes these ASGI layers, outermost first:

1. :class:`Counting`: ``served["METHOD /path"]`` and ``served["total"]``, every request;
   :class:`Corruption`: response faults damage a 2xx answer on its way out (``served["corrupted"]``);
2. :class:`Idempotency` (POSTs with an ``Idempotency-Key`` header whose credentials pass
   the API-key check): a stored 2xx answer for the same path and key is replayed
   (``idempotent-replayed: true``, ``served["replayed"]``); a duplicate of a request still
   in flight waits for it. A replay is free: it never reaches the rate limit or the faults;
3. :class:`RateLimit` (edit routes, :data:`EDIT_PATHS`): the sliding 60 s window behind
   the ``x-ratelimit-*`` headers; with ``enforce_rate_limit`` a request beyond
   ``requests_per_minute`` is answered 429 (``served["rate_limited"]``);
4. :class:`FaultsAndLatency`: request faults, then ``hang`` / ``latency`` / ``latency_s``
   delays during which a client that disconnects abandons the request before any edit
   runs (``served["abandoned"]``);
5. the routes, which record each edit they perform (:meth:`ServiceState.record`).

"Performed" is the paid work: images/edits executed, BFL jobs created, batch lines executed.
Idempotency tests compare ``performed`` with what the client's ledger paid for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import math
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service import editor
from airflow_image_catalog.tooling.service.faults import (
    ERROR_CODES,
    JOB_KINDS,
    OUTPUT_KINDS,
    REQUEST_KINDS,
    RESPONSE_KINDS,
    Fault,
    FaultPlan,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
QUALITIES = ("low", "medium", "high", "auto")
BFL_CREDITS = {"flux-kontext-pro": 4.0, "flux-kontext-max": 8.0, "flux-2-pro": 3.0, "flux-2-max": 7.0}
SAMPLE_TTL_S = 600.0
CONTROL = "/_service/"
#: POSTs to these paths perform (paid) edits: they count toward the rate window and get ``latency_s``
EDIT_PATHS = frozenset({"/v1/images/edits", *(f"/v1/{model}" for model in BFL_CREDITS)})
#: providers keep idempotency keys for 24 h
IDEMPOTENCY_TTL_S = 24 * 3600.0
#: stored answers carry base64 images: keep at most this many (least recently used go first)
IDEMPOTENCY_MAX_ENTRIES = 256
RATE_WINDOW_S = 60.0


def openai_error(status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


@dataclass
class Job:
    id: str
    model: str
    fate: str | None
    prompt: str
    output_format: str
    done: bool = False
    data: bytes | None = None
    error: str | None = None
    ready_at: float | None = None
    cancelled: bool = False
    drift: bool = False


@dataclass
class Captured:
    """A complete response, as an idempotency key replays it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Claim:
    """One idempotency key: in flight until ``done`` is set, then ``response`` (None = not stored)."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    response: Captured | None = None
    expires_at: float = math.inf


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass
class ServiceState:
    """Everything the service remembers; tests and ``/_service/stats`` read it.

    Configuration (``api_key`` .. ``idempotency_max_entries``) survives :meth:`reset`
    unless asked: a service started with ``--latency 2`` stays slow across bench runs.
    """

    api_key: str | None = None
    requests_per_minute: int = 600
    sample_ttl_s: float = SAMPLE_TTL_S
    #: seconds added to every edit (edit routes and batch lines), as if the model took that long
    latency_s: float = 0.0
    #: answer 429 beyond ``requests_per_minute`` edit requests in the sliding 60 s window
    enforce_rate_limit: bool = False
    idempotency_ttl_s: float = IDEMPOTENCY_TTL_S
    idempotency_max_entries: int = IDEMPOTENCY_MAX_ENTRIES
    faults: FaultPlan = field(default_factory=FaultPlan)
    served: Counter = field(default_factory=Counter)
    #: the paid work done: one small dict per edit performed, see :meth:`record`
    performed: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Files: metadata + "content"
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI Batch objects
    log: deque = field(default_factory=lambda: deque(maxlen=200))  # request shapes, never key values
    _window: deque = field(default_factory=deque)
    _claims: OrderedDict = field(default_factory=OrderedDict)  # (path, key) -> Claim, LRU order
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        """A request served (``key`` is ``"METHOD /path"``): counts toward ``total``."""
        with self._lock:
            self.served[key] += 1
            self.served["total"] += 1

    def note(self, outcome: str) -> None:
        """How a counted request ended (``replayed``, ``abandoned``, ``rate_limited``): not a request."""
        with self._lock:
            self.served[outcome] += 1

    def requests(self, key: str = "total") -> int:
        return self.served[key]

    # -- rate window: edit requests only, so the headers tell the truth about enforcement

    def _rate(self, now: float) -> tuple[dict[str, str], float]:
        """Headers and seconds until a slot frees (0 = one is free); call with the lock held."""
        while self._window and now - self._window[0] > RATE_WINDOW_S:
            self._window.popleft()
        limit = max(self.requests_per_minute, 1)
        remaining = max(limit - len(self._window), 0)
        wait = RATE_WINDOW_S - (now - self._window[0]) if remaining == 0 else 0.0
        reset = wait if remaining == 0 else RATE_WINDOW_S / limit
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": f"{max(reset, 0.001):.3f}s",
        }, wait

    def admit(self) -> tuple[bool, dict[str, str], float]:
        """Take a slot in the window for an edit request: (admitted, headers, seconds until a slot frees).

        Without ``enforce_rate_limit`` every request is admitted (and counted); refused ones are not.
        """
        now = time.monotonic()
        with self._lock:
            _, wait = self._rate(now)
            if wait > 0 and self.enforce_rate_limit:
                headers, _ = self._rate(now)
                return False, headers, wait
            self._window.append(now)
            headers, wait = self._rate(now)
        return True, headers, wait

    def rate_headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers as things stand (takes no slot)."""
        with self._lock:
            return self._rate(time.monotonic())[0]

    # -- idempotency keys (the :class:`Idempotency` layer)

    def claim(self, key: tuple[str, str]) -> tuple[Claim, bool]:
        """The key's claim, and whether the caller now owns it (it must :meth:`settle` it)."""
        now = time.monotonic()
        with self._lock:
            for old in [k for k, c in self._claims.items() if c.expires_at <= now]:
                del self._claims[old]
            claim = self._claims.get(key)
            if claim is not None:
                self._claims.move_to_end(key)
                return claim, False
            claim = self._claims[key] = Claim()
            return claim, True

    def settle(self, key: tuple[str, str], claim: Claim, response: Captured | None) -> None:
        """Store a 2xx answer (``None``: forget the key, so a retry runs) and wake the duplicates."""
        with self._lock:
            if response is not None:
                claim.response, claim.expires_at = response, time.monotonic() + self.idempotency_ttl_s
                stored = [k for k, c in self._claims.items() if c.response is not None]
                for old in stored[:max(len(stored) - self.idempotency_max_entries, 0)]:
                    del self._claims[old]
            elif self._claims.get(key) is claim:
                del self._claims[key]
        claim.done.set()

    # -- paid work

    def record(self, kind: str, image: bytes, prompt: str, model: str, key: str | None, *,
               job_id: str | None = None) -> None:
        """One edit performed (``images.edit``, ``bfl.submit``, ``batch.line``): the paid work."""
        entry = {"kind": kind, "image_sha256": _sha256(image), "prompt_sha256": _sha256(prompt),
                 "model": model, "idempotency_key": key, "job_id": job_id, "at": time.time()}
        with self._lock:
            self.performed.append(entry)

    def take_drift(self, path: str | None, prompt: str) -> bool:
        """Whether a ``drift`` rule claims this edit (``path`` None: not an edit request, never)."""
        return path is not None and self.faults.take(path, OUTPUT_KINDS, prompt=prompt) is not None

    def performed_by_image(self) -> dict[str, int]:
        """Edits performed per first-input-image sha256: > 1 means the same image was paid again."""
        with self._lock:
            return dict(Counter(entry["image_sha256"] for entry in self.performed))

    def produced(self, entry: dict[str, Any]) -> bool:
        """Whether a performed edit produced a result (a BFL job can be billed and then end without one:
        moderated, errored, lost, stuck, or its sample expired before anyone downloaded it)."""
        job = self.jobs.get(entry.get("job_id") or "")
        if job is None:
            return True
        return job.fate in (None, "drift") and job.error is None

    def duplicates(self) -> int:
        """Performed edits whose (kind, image, prompt, model) had already produced a result: paid twice.

        A new job after one that died without a result (see :meth:`produced`) is not a duplicate: nothing
        was delivered the first time. Such jobs are counted by :meth:`paid_without_result`.
        """
        seen: set[tuple[str, ...]] = set()
        repeats = 0
        with self._lock:
            for entry in self.performed:
                work = (entry["kind"], entry["image_sha256"], entry["prompt_sha256"], entry["model"])
                repeats += work in seen
                if self.produced(entry):
                    seen.add(work)
        return repeats

    def paid_without_result(self) -> int:
        """Performed (billed) edits that produced no result."""
        with self._lock:
            return sum(not self.produced(entry) for entry in self.performed)

    def stats(self) -> dict[str, Any]:
        """What ``GET /_service/stats`` answers."""
        with self._lock:
            served = dict(self.served)
            kinds = Counter(entry["kind"] for entry in self.performed)
        return {"served": served, "faults": self.faults.to_list(), "jobs": len(self.jobs),
                "performed": sum(kinds.values()), "performed_by_kind": dict(kinds),
                "duplicates": self.duplicates(), "paid_without_result": self.paid_without_result(),
                **{k: served.get(k, 0) for k in ("replayed", "abandoned", "rate_limited")}}

    def reset(self, *, config: bool = False) -> None:
        """Forget requests, work, jobs, files, batches, keys and faults; ``config`` also restores
        the configuration fields to their defaults (test fixtures)."""
        with self._lock:
            self.served.clear()
            self.performed.clear()
            self.jobs.clear()
            self.files.clear()
            self.batches.clear()
            self._window.clear()
            self._claims.clear()
            self.log.clear()
        self.faults.set([])
        if config:
            defaults = ServiceState()
            for name in CONFIG_FIELDS:
                setattr(self, name, getattr(defaults, name))


CONFIG_FIELDS = ("api_key", "requests_per_minute", "sample_ttl_s", "latency_s", "enforce_rate_limit",
                 "idempotency_ttl_s", "idempotency_max_entries")


def _api(scope: Scope) -> bool:
    """An HTTP request the service counts and guards (everything but ``/_service/`` control)."""
    return scope["type"] == "http" and not scope["path"].startswith(CONTROL)


def is_edit(scope: Scope) -> bool:
    """A request to an edit-performing route (rate window, ``latency_s``)."""
    return scope["method"] == "POST" and scope["path"] in EDIT_PATHS


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    """``send`` that adds ``extra`` to the response start, unless the app set the same header."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []),
                                  *((k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present)]
        await send(message)

    return wrapped


class Counting:
    """Counts every request it serves: ``served["METHOD /path"]`` and ``served["total"]``."""

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _api(scope):
            self.state.count(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


def corrupt_body(kind: str, body: bytes) -> bytes:
    """A 2xx JSON body damaged the way ``kind`` says (``drop_after`` is done by the sender)."""
    import json

    if kind == "malformed_json":
        return body[: max(len(body) // 2, 1)]
    try:
        payload = json.loads(body)
        items = payload["data"]
    except (ValueError, KeyError, TypeError):
        return body[: max(len(body) // 2, 1)]  # not an images answer: damage it anyway
    for item in items:
        if kind == "bad_base64":
            item["b64_json"] = "!!not*base64!!" + item.get("b64_json", "")[:40]
        else:
            item["b64_json"] = base64.b64encode(b"<html><body>502 Bad Gateway</body></html>").decode()
    return json.dumps(payload).encode()


class Corruption:
    """Response faults: a 2xx answer the inner layers produced (and stored) is damaged on its way out.

    Outside :class:`Idempotency`, so the stored answer stays intact: a retry with the same key is
    replayed the good one. A fault is taken when a 2xx answer starts on a matching path.
    """

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _api(scope):
            return await self.app(scope, receive, send)
        held: dict[str, Any] = {}

        async def damaging(message: Message) -> None:
            if message["type"] == "http.response.start":
                fault = self.state.faults.take(scope["path"], RESPONSE_KINDS) \
                    if 200 <= message["status"] < 300 else None
                if fault is None:
                    return await send(message)
                self.state.note("corrupted")
                held.update(kind=fault.kind, start=message, body=b"")
                return None
            if not held:
                return await send(message)
            held["body"] += message.get("body", b"")
            if message.get("more_body", False) or held.get("sent"):
                return None
            held["sent"] = True
            body = held["body"]
            headers = [(k, v) for k, v in held["start"].get("headers", []) if k.lower() != b"content-length"]
            if held["kind"] == "drop_after":  # declare the whole length, send half, close
                await send({**held["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                return None
            body = corrupt_body(held["kind"], body)
            await send({**held["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return None

        await self.app(scope, receive, damaging)


class Idempotency:
    """``Idempotency-Key`` on any POST: a stored 2xx answer is replayed instead of running again.

    Scoped by path. A duplicate that arrives while the original is in flight waits for it,
    then replays its answer or, if it failed or was abandoned (nothing stored), runs itself.
    Only complete 2xx answers are stored, so errors and injected faults are retried for
    real. The key check follows the API-key check (a wrong key is never replayed anything)
    and precedes rate limiting and faults: a replay is free and cannot fail.
    """

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    def _key(self, scope: Scope) -> tuple[str, str] | None:
        if not _api(scope) or scope["method"] != "POST":
            return None
        request = Request(scope)
        key = request.headers.get("idempotency-key")
        if not key or not _authorised(request, self.state):
            return None
        return scope["path"], key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope)
        if key is None:
            return await self.app(scope, receive, send)
        while True:
            claim, owner = self.state.claim(key)
            if owner:
                break
            if claim.response is None:
                await claim.done.wait()  # in flight: wait, then replay it or claim the key ourselves
                continue
            self.state.note("replayed")
            return await self._replay(claim.response, scope, send)
        body: list[bytes] = []
        start: Message = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False) and 200 <= start.get("status", 0) < 300:
                    start["complete"] = True
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            stored = Captured(start["status"], list(start.get("headers", [])), b"".join(body)) \
                if start.get("complete") else None
            self.state.settle(key, claim, stored)

    async def _replay(self, response: Captured, scope: Scope, send: Send) -> None:
        headers = [(k, v) for k, v in response.headers if not k.lower().startswith(b"x-ratelimit-")]
        fresh = self.state.rate_headers() if is_edit(scope) else {}
        headers += [(k.encode(), v.encode()) for k, v in {**fresh, "idempotent-replayed": "true"}.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


class RateLimit:
    """Edit routes take a slot in the sliding window; their answers carry the ``x-ratelimit-*`` headers.

    With ``enforce_rate_limit``, a request beyond ``requests_per_minute`` is answered 429
    ``rate_limit_exceeded`` with ``retry-after-ms`` (until the oldest slot frees) and is not performed.
    """

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _api(scope) or not is_edit(scope):
            return await self.app(scope, receive, send)
        admitted, headers, wait = self.state.admit()
        if not admitted:
            self.state.note("rate_limited")
            headers |= {"retry-after-ms": str(math.ceil(wait * 1000)), "retry-after": str(math.ceil(wait))}
            response = openai_error(429, "rate_limit_exceeded", f"Rate limit reached for requests: limit "
                                    f"{headers['x-ratelimit-limit-requests']} per min. Please try again in "
                                    f"{wait:.3f}s.", headers=headers)
            return await response(scope, receive, send)
        await self.app(scope, receive, _with_headers(send, headers))


class _Buffered:
    """The request body read up front, replayed to the app; later calls see the disconnect listener."""

    def __init__(self, messages: list[Message], listener: asyncio.Future):
        self.messages, self.listener = messages, listener

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return await self.listener  # after the body only ``http.disconnect`` can come

    def close(self) -> None:
        self.listener.cancel()


async def _delay_unless_gone(seconds: float, receive: Receive) -> _Buffered | None:
    """Read the whole body, then wait ``seconds`` unless the client disconnects first (None).

    Like inference servers that cancel work when the client goes away: an abandoned request
    never reaches the engine.
    """
    messages: list[Message] = []
    while not messages or messages[-1].get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    listener = asyncio.ensure_future(receive())
    while (remaining := deadline - loop.time()) > 0:
        done, _ = await asyncio.wait({listener}, timeout=remaining)
        if not done:
            break
        if listener.result()["type"] == "http.disconnect":
            return None
        messages.append(listener.result())  # not expected after the last body part; keep it anyway
        listener = asyncio.ensure_future(receive())
    return _Buffered(messages, listener)


class FaultsAndLatency:
    """Request-level faults before routing, then the ``hang`` / ``latency`` / ``latency_s`` delay."""

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _api(scope):
            return await self.app(scope, receive, send)
        fault = self.state.faults.take(scope["path"], REQUEST_KINDS)
        delay = self.state.latency_s if is_edit(scope) else 0.0
        if fault is not None and fault.kind in ("hang", "latency"):
            delay += fault.seconds
        elif fault is not None:
            return await self._fail(fault, scope, receive, send)
        if delay <= 0:
            return await self.app(scope, receive, send)
        buffered = await _delay_unless_gone(delay, receive)
        if buffered is None:
            self.state.note("abandoned")
            return None
        try:
            await self.app(scope, buffered.receive, send)
        finally:
            buffered.close()

    async def _fail(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.kind == "drop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})
            return None  # the server closes the connection mid-body
        headers = self.state.rate_headers()
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.kind == "moderation":
            response = openai_error(400, fault.code or "moderation_blocked",
                                    "Your request was rejected as a result of our safety system.", headers=headers)
        else:
            code = fault.code or ERROR_CODES.get(fault.status, f"http_{fault.status}")
            response = openai_error(fault.status, code, f"injected fault: HTTP {fault.status}", headers=headers)
        return await response(scope, receive, send)


def _authorised(request: Request, state: ServiceState) -> bool:
    if state.api_key is None:
        return True
    bearer = request.headers.get("authorization", "")
    offered = [bearer[7:] if bearer.lower().startswith("bearer ") else None,
               request.headers.get("api-key"), request.headers.get("x-key")]
    return any(key is not None and secrets.compare_digest(key, state.api_key) for key in offered)


def _decode_mask(data: bytes, first_size: tuple[int, int]):
    """OpenAI masks: PNG with alpha, alpha 0 = edit here, same size as the first image."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.format != "PNG" or "A" not in img.getbands():
            raise BadRequest("invalid_mask", "mask must be a PNG with an alpha channel", "mask")
        if img.size != first_size:
            raise BadRequest("invalid_mask", f"mask size {img.size[0]}x{img.size[1]} does not match "
                             f"image size {first_size[0]}x{first_size[1]}", "mask")
        alpha = np.asarray(img.getchannel("A"))
    return alpha < 128


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise BadRequest("invalid_image", f"could not read the image: {exc}", "image") from None


def check_size(model: str, size: str | None) -> None:
    """The API's size rules (gpt-image-2: any WxH, sides multiple of 16, ratio <= 3, <= 3840x2160)."""
    if size in (None, "", "auto"):
        return
    if not model.startswith("gpt-image-2"):
        if size not in FIXED_SIZES:
            raise BadRequest("invalid_size", f"size must be one of {', '.join(FIXED_SIZES)}", "size")
        return
    try:
        width, height = editor.parse_size(size)
    except ValueError:
        raise BadRequest("invalid_size", f"invalid size {size!r}", "size") from None
    long, short = max(width, height), min(width, height)
    if width % 16 or height % 16 or long > 3 * short or long > 3840 or width * height > 3840 * 2160:
        raise BadRequest("invalid_size", f"invalid size {size!r} for {model}", "size")


def describe(request: Request, form) -> dict[str, Any]:
    """A request's shape for tests: fields, file parts, which auth header (not its value), query."""
    return {
        "path": request.url.path,
        "query": dict(request.query_params),
        "auth": [h for h in ("authorization", "api-key", "x-key") if h in request.headers],
        "headers": {k: v for k, v in request.headers.items() if k.startswith("openai-")},
        "fields": {k: v for k, v in form.multi_items() if isinstance(v, str)},
        "files": [(k, v.filename, v.content_type, v.size) for k, v in form.multi_items() if not isinstance(v, str)],
    }


async def _edit_request(form, state: ServiceState, request: Request) -> dict[str, Any]:
    """Validate an images/edits form and run it: the response body."""
    parts = [("image[]", p) for p in form.getlist("image[]")] + [("image", p) for p in form.getlist("image")]
    images = [await part.read() for _, part in parts]
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    mask = await form.get("mask").read() if form.get("mask") is not None else None
    return await run_edit(images, mask, fields, state=state, kind="images.edit", fault_path=request.url.path,
                          idempotency_key=request.headers.get("idempotency-key"))


async def run_edit(images: list[bytes], mask_png: bytes | None, form: dict[str, Any], *,
                   state: ServiceState | None = None, kind: str = "images.edit", fault_path: str | None = None,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Validate one images/edits request (multipart fields or a JSON body) and run it: the response body.

    With ``state`` the edit is recorded as performed (``kind``) once it succeeded, and a
    ``drift`` rule matching ``fault_path`` and the prompt may claim it (``None``: never).
    """
    prompt = str(form.get("prompt") or "")
    model = str(form.get("model") or "gpt-image-2")
    if not images:
        raise BadRequest("missing_required_parameter", "image is required", "image")
    if not prompt.strip():
        raise BadRequest("missing_required_parameter", "prompt is required", "prompt")
    if len(images) > 16:
        raise BadRequest("invalid_value", "at most 16 images", "image")
    if form.get("input_fidelity") is not None and model.startswith("gpt-image-2"):
        raise BadRequest("invalid_value", "input_fidelity is not supported for gpt-image-2", "input_fidelity")
    n = int(form.get("n") or 1)
    if not 1 <= n <= 10:
        raise BadRequest("invalid_value", "n must be between 1 and 10", "n")
    size, quality = form.get("size"), str(form.get("quality") or "auto")
    if quality not in QUALITIES:
        raise BadRequest("invalid_value", f"quality must be one of {', '.join(QUALITIES)}", "quality")
    check_size(model, size)
    output_format = str(form.get("output_format") or "png")
    sizes = [_image_size(data) for data in images]
    mask = _decode_mask(mask_png, sizes[0]) if mask_png is not None else None
    compression = int(form.get("output_compression") or 92)
    drift = state is not None and state.take_drift(fault_path, prompt)
    try:
        data, width, height = await run_in_threadpool(
            editor.edit_pixels, images, prompt, mask=mask, size=size, output_format=output_format,
            quality=max(compression, 1), drift=drift)
    except Exception as exc:  # engine errors are the image's fault, like the API's 400s
        raise BadRequest("invalid_image", str(exc), "image") from None
    if state is not None:
        state.record(kind, images[0], prompt, model, idempotency_key)
    high = model.startswith("gpt-image-2") or form.get("input_fidelity") == "high"
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": base64.b64encode(data).decode()} for _ in range(n)],
        "size": f"{width}x{height}",
        "quality": quality,
        "background": form.get("background") or "auto",
        "output_format": output_format,
        "usage": editor.usage(sizes, prompt, (width, height), quality=quality, high_fidelity=high, n=n, model=model),
    }
    return body


def build_app(state: ServiceState) -> Any:
    async def images_edit(request: Request) -> Response:
        if not _authorised(request, state):
            return openai_error(401, "invalid_api_key", "Incorrect API key provided.")
        try:
            async with request.form(max_files=32, max_part_size=50 * 1024 * 1024) as form:
                state.log.append(describe(request, form))
                body = await _edit_request(form, state, request)
        except BadRequest as exc:
            return openai_error(400, exc.code, str(exc), param=exc.param)
        return JSONResponse(body, headers={"x-request-id": f"req_{secrets.token_hex(8)}"})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def set_faults(request: Request) -> Response:
        payload = await request.json()
        try:
            state.faults.set(payload.get("faults", []))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": state.faults.to_list()})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    from airflow_image_catalog.tooling.service.batches import batch_routes
    from airflow_image_catalog.tooling.service.bfl import bfl_routes

    routes = [
        Route("/v1/images/edits", images_edit, methods=["POST"]),
        Route(CONTROL + "stats", stats, methods=["GET"]),
        Route(CONTROL + "faults", set_faults, methods=["POST"]),
        Route(CONTROL + "reset", reset, methods=["POST"]),
        *batch_routes(state),
        *bfl_routes(state),
    ]
    app: Any = Starlette(routes=routes)
    for layer in (FaultsAndLatency, RateLimit, Idempotency, Corruption, Counting):  # innermost first
        app = layer(app, state)
    return app


__all__ = ["EDIT_PATHS", "JOB_KINDS", "BadRequest", "Corruption", "Counting", "FaultsAndLatency", "Idempotency", "Job", "RateLimit",
           "ServiceState", "build_app", "check_size", "is_edit", "openai_error", "run_edit"]
