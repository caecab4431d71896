"""The ASGI layers every request outside ``/_service/`` passes, outermost first:

1. :class:`Counting`: ``served["METHOD /path"]`` and ``served["total"]``, every request;
   :class:`Corruption`: response faults damage a 2xx answer on its way out (``served["corrupted"]``);
2. :class:`Idempotency` (POSTs with an ``Idempotency-Key`` header whose credentials pass
   the API-key check): a stored 2xx answer for the same path and key is replayed
   (``idempotent-replayed: true``, ``served["replayed"]``); a duplicate of a request still
   in flight waits for it (``honour_idempotency`` False: keys ignored, as the real APIs may).
   A replay is free: it never reaches the rate limit or the faults;
3. :class:`RateLimit` (edit routes, :data:`~airflow_image_catalog.tooling.service.protocol.EDIT_PATHS`):
   the continuously replenished bucket behind the ``x-ratelimit-*`` headers; with ``enforce_rate_limit`` a
   request beyond it (a second's share of ``requests_per_minute`` at once, as OpenAI quantizes its
   limits) is answered 429 (``served["rate_limited"]``);
4. :class:`FaultsAndLatency`: request faults, then ``hang`` / ``latency`` / ``latency_s``
   delays during which a client that disconnects abandons the request before any edit
   runs (``served["abandoned"]``);
5. the routes, which record each edit they perform (``ServiceState.record``).
"""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Any

from starlette.requests import Request

from airflow_image_catalog.tooling.service.faults import ERROR_CODES, REQUEST_KINDS, RESPONSE_KINDS, Fault
from airflow_image_catalog.tooling.service.protocol import (
    Message,
    Receive,
    Scope,
    Send,
    authorised,
    is_api,
    is_edit,
    openai_error,
)
from airflow_image_catalog.tooling.service.state import Captured, ServiceState


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
        if is_api(scope):
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
        if not is_api(scope):
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
        if not is_api(scope) or scope["method"] != "POST" or not self.state.honour_idempotency:
            return None
        request = Request(scope)
        key = request.headers.get("idempotency-key")
        if not key or not authorised(request, self.state.api_key):
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
    """Edit routes take a request from the rate bucket; their answers carry the ``x-ratelimit-*`` headers.

    With ``enforce_rate_limit``, a request the bucket cannot admit (beyond ``requests_per_minute``, or a burst
    beyond a quantum's share of it: :meth:`ServiceState.admit`) is answered 429 ``rate_limit_exceeded`` with
    ``retry-after-ms`` (until the bucket admits one again) and is not performed.
    """

    def __init__(self, app, state: ServiceState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_api(scope) or not is_edit(scope):
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
        if not is_api(scope):
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
