"""The local edit service's ASGI app: OpenAI images/edits, Files + Batch, and BFL submit/poll.

Backed by the local engine; answers with realistic ``usage`` and ``x-ratelimit-*``
headers; counts every request it serves and every edit it performs; injects the faults
of its :class:`~airflow_image_catalog.tooling.service.faults.FaultPlan`. The pieces, each
importing only what the others make public: :mod:`.protocol` (wire types, errors, the key
check), :mod:`.state` (:class:`~.state.ServiceState`), :mod:`.layers` (the ASGI layers, in
the order a request passes them), the routes of :mod:`.images`, :mod:`.batches` and
:mod:`.bfl`, and this module, which puts them together.

"Performed" is the paid work: images/edits executed, BFL jobs created, batch lines executed.
Idempotency tests compare ``performed`` with what the client's ledger paid for.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_image_catalog.tooling.service.batches import batch_routes
from airflow_image_catalog.tooling.service.bfl import bfl_routes
from airflow_image_catalog.tooling.service.images import image_routes
from airflow_image_catalog.tooling.service.layers import (
    Corruption,
    Counting,
    FaultsAndLatency,
    Idempotency,
    RateLimit,
)
from airflow_image_catalog.tooling.service.protocol import CONTROL
from airflow_image_catalog.tooling.service.state import ServiceState


def build_app(state: ServiceState) -> Any:
    """The service over ``state``: its routes wrapped in the layers of :mod:`.layers`."""

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

    routes = [
        *image_routes(state),
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
