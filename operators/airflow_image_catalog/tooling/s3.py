"""A loopback S3 API for tests, benchmarks and the reliability suite: moto's server and a fault proxy.

:class:`MotoServer` runs moto's S3 server on ``127.0.0.1`` and a free port; :class:`S3FaultProxy`
sits in front of any S3 endpoint and answers chosen requests with faults instead of forwarding
them; :func:`s3_environment` points boto3 and Airflow's ``aws_default`` connection at an endpoint.
The pytest fixtures over them live in ``tests/fixtures/s3.py``.

Injecting faults
----------------
Requests are classified by :func:`request_kind` as ``GET`` (GetObject), ``PUT``,
``LIST`` (a GET with ``list-type``: ListObjectsV2), ``HEAD``, ``DELETE``, ``POST``.
Rules apply in the order added; each answers the next ``times`` matching requests
(``times=None``: every one) instead of forwarding them::

    s3_faults.fail("GET", times=2)                   # 500 InternalError (S3 XML body)
    s3_faults.fail("PUT", status=503, code="ServiceUnavailable")
    s3_faults.slow_down("LIST", times=1)             # 503 SlowDown: S3 throttling
    s3_faults.drop("GET", times=1)                   # close the connection, no response
    s3_faults.truncate("GET", times=1)               # real headers, half the body, then close
    s3_faults.delay("LIST", 0.5, times=None)         # answer, but only after 0.5 s (slow S3)
    s3_faults.fail("*", times=None)                  # every request fails until reset()
    s3_faults.fail("GET", key_contains="broken/")    # only keys (paths) containing this

    s3_faults.stats()      # {"forwarded": {"PUT": 1}, "failed": {"GET": 2}, "dropped": {},
                           #  "truncated": {}, "delayed": {}}; retried attempts count one each
    s3_faults.pending()    # rules with requests left to answer
    s3_faults.reset()      # no rules, zero stats

Outside pytest, ``with S3FaultProxy("http://127.0.0.1:5000") as proxy:`` serves
``proxy.url`` for any S3 endpoint.

``python -m airflow_image_catalog.tooling.s3 mirror DIR s3://bucket/prefix --endpoint-url URL`` uploads a
folder (the offline compose stack seeds its S3 server with the bundled samples this way).

botocore's standard retry mode waits ``rand(0, 1) * 2**i`` seconds after a throttling
error (SlowDown) and ``rand(0, 0.05) * 2**i`` after a 5xx, so inject few throttles
per test to keep tests fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from airflow_image_catalog.storage.s3 import split_s3_uri
from airflow_image_catalog.tooling.service.server import LoopbackServer, read_body

REGION = "us-east-1"
ACCESS_KEY = "AKIACATALOGTEST00001"
SECRET_KEY = "catalog-test-secret-key-never-logged"
KINDS = ("GET", "PUT", "LIST", "HEAD", "DELETE", "POST")
#: rule action -> the stats bucket it counts in (truncated and delayed requests also count as forwarded)
ACTIONS = {"error": "failed", "drop": "dropped", "truncate": "truncated", "delay": "delayed"}
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
                         b"proxy-connection", b"proxy-authenticate", b"proxy-authorization", b"expect",
                         b"host", b"content-length"})
ERROR_MESSAGES = {
    "InternalError": "We encountered an internal error. Please try again.",
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
}


def request_kind(method: str, query_string: str) -> str:
    """``GET``/``PUT``/``HEAD``/``DELETE``/``POST``, and ``LIST`` for a GET with ``list-type``."""
    method = method.upper()
    if method == "GET" and "list-type" in parse_qs(query_string, keep_blank_values=True):
        return "LIST"
    return method


@dataclass
class S3Fault:
    """One rule: answer the next ``times`` requests of ``kind`` (``*`` = any) with ``action``.

    :param action: ``error`` (``status`` with an S3 XML ``<Error><Code>code</Code>``), ``drop``
        (close without a response), ``truncate`` (forward, then cut the response body in half) or
        ``delay`` (forward after ``seconds``).
    :param times: how many matching requests to answer; None = all of them.
    :param key_contains: only requests whose path contains this text.
    :param message: the error's ``<Message>`` (default: what S3 says for ``code``).
    :param seconds: how long a ``delay`` rule holds the request.
    """

    kind: str
    action: str = "error"
    status: int = 500
    code: str = "InternalError"
    times: int | None = 1
    key_contains: str | None = None
    message: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.kind = self.kind.upper()
        if self.kind != "*" and self.kind not in KINDS:
            raise ValueError(f"kind must be '*' or one of {KINDS}, got {self.kind!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {sorted(ACTIONS)}, got {self.action!r}")

    def matches(self, kind: str, path: str) -> bool:
        return (self.times is None or self.times > 0) and self.kind in ("*", kind) and (
            self.key_contains is None or self.key_contains in path)


class S3FaultProxy(LoopbackServer):
    """A reverse proxy on loopback in front of an S3 endpoint that fails requests on demand.

    :param upstream: the S3 endpoint URL (e.g. ``moto_server.url``).
    :param port: 0 picks a free port.
    """

    def __init__(self, upstream: str, port: int = 0, *, host: str = "127.0.0.1"):
        super().__init__(None, port, host=host)
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._rules: list[S3Fault] = []
        self._stats = {"forwarded": Counter(), **{name: Counter() for name in ACTIONS.values()}}

    # -- rules -------------------------------------------------------------------------
    def add(self, fault: S3Fault) -> S3Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def fail(self, kind: str = "*", times: int | None = 1, *, status: int = 500, code: str = "InternalError",
             key_contains: str | None = None, message: str | None = None) -> S3Fault:
        """Answer the next ``times`` ``kind`` requests with ``status`` and an S3 error ``code``."""
        return self.add(S3Fault(kind, "error", status, code, times, key_contains, message))

    def slow_down(self, kind: str = "*", times: int | None = 1, *, key_contains: str | None = None) -> S3Fault:
        """S3 throttling: 503 ``SlowDown``."""
        return self.fail(kind, times, status=503, code="SlowDown", key_contains=key_contains)

    def drop(self, kind: str = "*", times: int | None = 1, *, key_contains: str | None = None) -> S3Fault:
        """Close the connection without answering (a reset / dead load balancer)."""
        return self.add(S3Fault(kind, "drop", 0, "", times, key_contains))

    def truncate(self, kind: str = "GET", times: int | None = 1, *, key_contains: str | None = None) -> S3Fault:
        """Forward, answer with the real headers, send half the body and close (a reset mid-download)."""
        return self.add(S3Fault(kind, "truncate", 0, "", times, key_contains))

    def delay(self, kind: str = "*", seconds: float = 1.0, times: int | None = 1, *,
              key_contains: str | None = None) -> S3Fault:
        """Forward, but only after ``seconds`` (a slow or congested endpoint)."""
        return self.add(S3Fault(kind, "delay", 0, "", times, key_contains, seconds=seconds))

    def pending(self) -> list[S3Fault]:
        with self._lock:
            return [rule for rule in self._rules if rule.times is None or rule.times > 0]

    def stats(self) -> dict[str, dict[str, int]]:
        """Requests per kind: ``forwarded`` to the upstream (truncated and delayed ones too),
        ``failed`` with an injected status, ``dropped`` without a response, ``truncated``
        mid-body, ``delayed``."""
        with self._lock:
            return {name: dict(counter) for name, counter in self._stats.items()}

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            for counter in self._stats.values():
                counter.clear()

    def _take(self, kind: str, path: str) -> S3Fault | None:
        """The first matching rule, with one of its requests used up; None = forward."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(kind, path):
                    if rule.times is not None:
                        rule.times -= 1
                    self._stats[ACTIONS[rule.action]][kind] += 1
                    if rule.action in ("truncate", "delay"):
                        self._stats["forwarded"][kind] += 1
                    return rule
            self._stats["forwarded"][kind] += 1
            return None

    # -- the ASGI app ------------------------------------------------------------------
    def build(self):
        async def app(scope, receive, send) -> None:  # a plain function: uvicorn detects ASGI 3
            await self._handle(scope, receive, send)

        return app

    async def _handle(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        query = scope.get("query_string", b"").decode("latin-1")
        kind = request_kind(scope["method"], query)
        rule = self._take(kind, scope["path"])
        if rule is not None and rule.action == "delay":
            await asyncio.sleep(rule.seconds)
        if rule is None or rule.action in ("truncate", "delay"):
            await self._forward(scope, body, query, send, truncate=rule is not None and rule.action == "truncate")
        elif rule.action == "drop":
            await _drop(send)
        else:
            await _s3_error(send, rule, scope["method"] == "HEAD")

    async def _forward(self, scope, body: bytes, query: str, send, truncate: bool = False) -> None:
        import httpx

        path = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + path.decode("latin-1") + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        async with httpx.AsyncClient(timeout=60) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                data = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        out = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
        if scope["method"] == "HEAD":  # the object's size, not this (empty) body's
            out += [(b"content-length", response.headers.get("content-length", "0").encode())]
        else:
            out += [(b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        if truncate:
            await send({"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True})
            await _drop(send, started=True)
            return
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})


async def _s3_error(send, rule: S3Fault, head: bool) -> None:
    message = rule.message or ERROR_MESSAGES.get(rule.code, "Injected fault.")
    request_id = uuid.uuid4().hex[:16]
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f"<Error><Code>{rule.code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>").encode()
    headers = [(b"content-type", b"application/xml"), (b"x-amz-request-id", request_id.encode()),
               (b"content-length", str(0 if head else len(body)).encode())]
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _drop(send, *, started: bool = False) -> None:
    """Abort the TCP connection (before any response byte, or mid-body once ``started``).

    ASGI has no "close without answering", so this reaches uvicorn's transport through
    the bound ``send``. Without it, an exception after a started response makes uvicorn
    close the connection (and log the exception).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        for _ in range(3):  # let uvicorn see the lost connection before the app returns
            await asyncio.sleep(0)
        return
    if not started:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b"<", "more_body": True})
    raise ConnectionAbortedError("injected connection drop")


@dataclass
class S3Bucket:
    """A test bucket: ``uri`` is ``s3://<name>``; ``client`` talks to moto directly (setup, checks)."""

    name: str
    endpoint_url: str
    client: Any

    @property
    def uri(self) -> str:
        return f"s3://{self.name}"

    def uri_for(self, key: str) -> str:
        return f"{self.uri}/{key.lstrip('/')}"

    def put(self, key: str, data: bytes = b"x") -> str:
        """Put one object directly (bypassing the code under test); returns its URI."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.uri_for(key)

    def put_many(self, keys: Iterable[str], data: bytes = b"x") -> None:
        """Many objects for setup: straight into the in-process moto backend (2,500 keys in ~0.2 s,
        where moto serves ~60 PUTs a second), or 32 PUTs at a time when moto runs elsewhere."""
        keys = list(keys)
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.s3.models import s3_backends

            backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
            backend.get_bucket(self.name)
        except Exception:  # not our in-process server: over HTTP
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda key: self.put(key, data), keys))
            return
        for key in keys:
            backend.put_object(self.name, key, data)


def s3_client(endpoint_url: str):
    """A plain boto3 client for ``endpoint_url`` with the dummy test keys."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def s3_environment(endpoint_url: str, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict:
    """Environment that points boto3 and the Airflow ``aws_default`` connection at ``endpoint_url``."""
    connection = {"conn_type": "aws", "login": access_key, "password": secret_key,
                  "extra": {"endpoint_url": endpoint_url, "region_name": REGION}}
    return {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "CATALOG_S3_MAX_ATTEMPTS": "3",
    }


class MotoServer:
    """moto's S3 server on ``127.0.0.1`` and a free port (``url`` once entered)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def mirror(source: Path, target: str, endpoint_url: str | None = None) -> int:
    """Upload every file under ``source`` to ``target`` (``s3://bucket/prefix``), creating the bucket if it is
    missing, as ``mc mb --ignore-existing`` and ``mc mirror --overwrite`` seed compose.yaml's MinIO; returns the
    number of files. Credentials come from the environment (boto3's chain)."""
    import boto3
    from botocore.exceptions import ClientError

    bucket, prefix = split_s3_uri(target)
    client = boto3.client("s3", endpoint_url=endpoint_url)
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        client.create_bucket(Bucket=bucket)
    files = sorted(path for path in Path(source).rglob("*") if path.is_file())
    for path in files:
        key = "/".join(part for part in (prefix.strip("/"), path.relative_to(source).as_posix()) if part)
        client.upload_file(str(path), bucket, key)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.s3")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("mirror", help="upload a folder to s3://bucket/prefix (the bucket made if missing)")
    upload.add_argument("source", type=Path)
    upload.add_argument("target", help="s3://bucket/prefix")
    upload.add_argument("--endpoint-url", default=None, help="the S3 API (default: AWS, or AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"source: {args.source} is not a folder")
    count = mirror(args.source, args.target, args.endpoint_url)
    print(f"{count} files from {args.source} to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
