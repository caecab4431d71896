"""What every route and layer of the local edit service shares: the wire types, the routes that
perform paid edits, OpenAI's error body and the API-key check (the same keys OpenAI, Azure
OpenAI and BFL send: ``Authorization: Bearer``, ``api-key``, ``x-key``)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: BFL's credits (1 credit = $0.01) per model: a FLUX.1 Kontext image, or FLUX.2's first megapixel
#: (black-forest-labs/skills ``skills/bfl-api/SKILL.md``, "Model Endpoints & Pricing")
BFL_CREDITS = {"flux-kontext-pro": 4.0, "flux-kontext-max": 8.0, "flux-2-pro": 3.0, "flux-2-max": 7.0,
               "flux-2-flex": 5.0, "flux-2-klein-4b": 1.4, "flux-2-klein-9b": 1.5}
#: FLUX.2's credits for every further megapixel of output and every megapixel of input (the same table: "+MP")
BFL_CREDITS_PER_MP = {"flux-2-pro": 1.5, "flux-2-max": 3.0, "flux-2-flex": 5.0, "flux-2-klein-4b": 0.1,
                      "flux-2-klein-9b": 0.2}
#: the service's own control routes (stats, faults, reset): never counted, guarded or faulted
CONTROL = "/_service/"
#: POSTs to these paths perform (paid) edits: they count toward the rate window and get ``latency_s``
EDIT_PATHS = frozenset({"/v1/images/edits", *(f"/v1/{model}" for model in BFL_CREDITS)})
#: Azure OpenAI's deployment route for the same edit (``/openai/deployments/<name>/images/edits``)
AZURE_EDIT = re.compile(r"^/openai/deployments/[^/]+/images/edits$")


def openai_error(status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class BadRequest(Exception):
    """A request the provider refuses: its error ``code``, the ``param`` at fault and the HTTP ``status``."""

    def __init__(self, code: str, message: str, param: str | None = None, *, status: int = 400):
        super().__init__(message)
        self.code, self.param, self.status = code, param, status


def is_api(scope: Scope) -> bool:
    """An HTTP request the service counts and guards (everything but ``/_service/`` control)."""
    return scope["type"] == "http" and not scope["path"].startswith(CONTROL)


def is_edit(scope: Scope) -> bool:
    """A request to an edit-performing route (rate window, ``latency_s``)."""
    return scope["method"] == "POST" and (scope["path"] in EDIT_PATHS or bool(AZURE_EDIT.match(scope["path"])))


def authorised(request: Request, api_key: str | None) -> bool:
    """Whether the request carries ``api_key`` (None: every request is)."""
    if api_key is None:
        return True
    bearer = request.headers.get("authorization", "")
    offered = [bearer[7:] if bearer.lower().startswith("bearer ") else None,
               request.headers.get("api-key"), request.headers.get("x-key")]
    return any(key is not None and secrets.compare_digest(key, api_key) for key in offered)
