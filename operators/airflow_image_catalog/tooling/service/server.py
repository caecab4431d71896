"""Run the local edit service: in a background thread (tests, demos) or from the command line.

``python -m airflow_image_catalog.tooling.service --port 8765`` serves on 127.0.0.1:8765 until Ctrl-C; ``--latency 2``
makes every edit take 2 s longer, ``--enforce-rate-limit --rpm 60`` answers 429 beyond 60
edit requests a minute, and beyond one a second (OpenAI quantizes its limits; ``--rate-quantum 60``: the minute only).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx

from airflow_image_catalog.tooling.service.app import build_app
from airflow_image_catalog.tooling.service.faults import parse_fault
from airflow_image_catalog.tooling.service.state import RATE_QUANTUM_S, ServiceState


async def read_body(receive) -> bytes:
    """The whole request body of an ASGI HTTP request (test receivers and proxies record it)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class LoopbackServer:
    """Any ASGI app on a loopback port, served by uvicorn in a daemon thread (tests, demos).

    :param app: the ASGI app (subclasses may build it in :meth:`build`).
    :param port: 0 picks a free port.
    """

    def __init__(self, app=None, port: int = 0, *, host: str = "127.0.0.1"):
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build(self):
        return self.app

    def _config(self):
        import uvicorn

        return uvicorn.Config(self.build(), log_level="warning", timeout_graceful_shutdown=1, lifespan="off")

    def start(self, timeout: float = 10.0):
        import uvicorn

        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"local-edit-service-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"local edit service did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LocalEditService(LoopbackServer):
    """The local edit service on a loopback port.

    :param port: 0 picks a free port.
    :param state: shared :class:`ServiceState` (faults, counters, api_key).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", state: ServiceState | None = None):
        self.state = state or ServiceState()
        super().__init__(None, port, host=host)

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def build(self):
        return build_app(self.state)

    def stats(self) -> dict:
        """What ``/_service/stats`` answers: requests served, edits performed, replays, duplicates..."""
        return self.state.stats()


def stats(url: str) -> dict:
    """``/_service/stats`` of a running service (another process's too)."""
    return httpx.get(f"{url.rstrip('/')}/_service/stats", timeout=5).json()


def served(url: str) -> dict:
    """The request counts of a running service (another process's too)."""
    return stats(url)["served"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image-catalog-edit-service", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="TCP port on --host (0 = a free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    parser.add_argument("--rpm", type=int, default=600,
                        help="edit requests per minute in the x-ratelimit-* headers (enforced with --enforce-rate-limit)")
    parser.add_argument("--enforce-rate-limit", action="store_true",
                        help="answer 429 rate_limit_exceeded beyond --rpm edit requests a minute (quantized: see "
                             "--rate-quantum)")
    parser.add_argument("--rate-quantum", type=float, default=RATE_QUANTUM_S, metavar="SECONDS",
                        help="enforce the limit over this period too: at most its share of --rpm at once, as OpenAI "
                             "does (default 1 s: 600/min admits bursts of 10; 60 = the minute only)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="add SECONDS to every edit (a client that disconnects meanwhile abandons it)")
    parser.add_argument("--fault", action="append", default=[], metavar="RULE",
                        help="inject a fault, e.g. status:3,status=429,retry_after_ms=200 (repeatable)")
    args = parser.parse_args(argv)
    state = ServiceState(api_key=args.api_key, requests_per_minute=args.rpm, latency_s=args.latency,
                         enforce_rate_limit=args.enforce_rate_limit, rate_quantum_s=args.rate_quantum)
    state.faults.set([parse_fault(text) for text in args.fault])
    service = LocalEditService(args.port, host=args.host, state=state)
    print(f"local edit service on {service.url} (OpenAI base URL {service.openai_base_url})", flush=True)
    import uvicorn

    try:
        uvicorn.Server(service._config()).run(sockets=[service._socket])
    finally:
        service._socket.close()
    return 0
