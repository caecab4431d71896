"""WebhookNotifier: post an alert as JSON to any HTTP endpoint (chat bridges, incident tools, ...).

For receivers without an Airflow provider. The URL comes from an ``http`` connection (so the
secret part of it lives in the secrets backend) or from a plain, templated ``url``. Deliveries
retry a couple of times on transport errors, 429 and 5xx; the URL is logged without its query,
credentials or token-like path segments.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from airflow.sdk import BaseNotifier

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.notifications.summary import alert_summary

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~+=]{20,}$")
_RESERVED_EXTRAS = frozenset({"headers", "timeout", "verify", "proxies", "auth_type"})


def redact_url(url: str) -> str:
    """``url`` safe for logs: no user info, no query or fragment, long token-like path segments masked."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = "/".join("***" if _TOKENISH.match(seg) else seg for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, netloc, path, "<redacted>" if parts.query else "", ""))


def connection_target(conn: Any, endpoint: str = "") -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """URL, headers and basic auth from an ``http`` connection (host may be a full URL).

    Headers come from the ``headers`` extra, else, like the HTTP provider, from the other
    string-valued extras.
    """
    host = (conn.host or "").strip()
    if "://" in host:
        base = host
    else:
        base = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
    url = base.rstrip("/") + ("/" + endpoint.lstrip("/") if endpoint else "")
    extra = conn.extra_dejson or {}
    raw_headers = extra.get("headers")
    if not isinstance(raw_headers, Mapping):
        raw_headers = {k: v for k, v in extra.items() if k not in _RESERVED_EXTRAS and isinstance(v, str)}
    auth = (conn.login, conn.password or "") if conn.login else None
    return url, {str(k): str(v) for k, v in raw_headers.items()}, auth


class WebhookDeliveryError(CatalogError, RuntimeError):
    """The receiver did not accept the alert after the retries (the message names no secret)."""


class WebhookNotifier(BaseNotifier):
    """POST a JSON alert to a webhook.

    Use directly as ``on_failure_callback=[WebhookNotifier(http_conn_id="alerts_webhook")]``
    (the payload is then the catalog alert summary of the failed task), or with a payload of
    your own. ``CatalogAlertNotifier`` uses it as its webhook channel.

    :param http_conn_id: an ``http`` connection: host (or full URL in host), schema, port,
        login/password for basic auth, headers in the extras.
    :param url: a plain URL instead of a connection (templated; keep secrets out of DAG files).
    :param endpoint: path appended to the connection's URL.
    :param payload: the JSON body (templated); None = the alert summary built from the context.
    :param headers: extra request headers (override the connection's).
    :param timeout: seconds per attempt.
    :param retries: further attempts after the first on transport errors, 408/425/429 and 5xx.
    :param backoff: seconds before the first retry, doubled each time.
    """

    template_fields: Sequence[str] = ("http_conn_id", "url", "endpoint", "payload", "headers")

    def __init__(
        self,
        *,
        http_conn_id: str | None = None,
        url: str | None = None,
        endpoint: str = "",
        payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not http_conn_id and not url:
            raise ValueError("WebhookNotifier needs http_conn_id or url")
        self.http_conn_id = http_conn_id
        self.url = url
        self.endpoint = endpoint
        self.payload = payload
        self.headers = headers
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff

    def target(self) -> tuple[str, dict[str, str], tuple[str, str] | None]:
        """Where to post, with which headers and auth (the connection is read at send time)."""
        if self.url:
            url = str(self.url).rstrip("/") + ("/" + self.endpoint.lstrip("/") if self.endpoint else "")
            return url, dict(self.headers or {}), None
        from airflow.sdk import BaseHook

        url, headers, auth = connection_target(BaseHook.get_connection(self.http_conn_id), self.endpoint)
        return url, {**headers, **(self.headers or {})}, auth

    def build_payload(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The body to send: the given payload, else the summary of the failed task."""
        if self.payload is not None:
            return json.loads(self.payload) if isinstance(self.payload, str) else dict(self.payload)

        return alert_summary("task_failure", context)

    def send(self, payload: Mapping[str, Any]) -> httpx.Response:
        """Post ``payload``; retry transient failures; raise :class:`WebhookDeliveryError` at the end."""
        url, headers, auth = self.target()
        safe = redact_url(url)
        problem = "no attempt"
        with httpx.Client(timeout=self.timeout, auth=auth, follow_redirects=False) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = client.post(url, json=payload, headers=headers)
                except httpx.TransportError as exc:
                    problem = f"{type(exc).__name__}"  # str(exc) may quote the URL
                else:
                    if response.status_code < 300:
                        self.log.info("webhook alert delivered to %s (HTTP %s, attempt %d)", safe,
                                      response.status_code, attempt + 1)
                        return response
                    problem = f"HTTP {response.status_code}"
                    if response.status_code not in RETRY_STATUSES:
                        break
                self.log.warning("webhook alert to %s: %s (attempt %d of %d)", safe, problem, attempt + 1,
                                 self.retries + 1)
        raise WebhookDeliveryError(f"webhook {safe}: {problem}")

    def notify(self, context: Any) -> None:
        self.send(self.build_payload(context))

    async def async_notify(self, context: Any) -> None:
        """Deadline callbacks run in the triggerer: deliver from a thread so the event loop never blocks."""
        await asyncio.to_thread(self.notify, context)
