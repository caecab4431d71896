"""CatalogAlertNotifier: one alert per failure, budget breach, gate failure, low pass rate or
missed deadline, fanned out to the channels a deployment configured.

The kind comes from the failed task (``cost_check`` -> budget breach, ``quality_gate`` -> low pass
rate or gate failure, ``outcome`` -> the run failed, anything else -> task failure); the message carries the run's counts, cost,
pass rate and links (see :mod:`airflow_image_catalog.notifications.summary`). Channels: the generic webhook
(:class:`~airflow_image_catalog.notifications.webhook.WebhookNotifier`), e-mail through the SMTP provider's
``SmtpNotifier``, Slack through the Slack provider's ``SlackWebhookNotifier`` and, where the
Apprise provider is installed, ``AppriseNotifier``. A channel whose connection is missing or whose
delivery fails is skipped with a warning: an alert must never crash the callback.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseNotifier

from airflow_image_catalog.notifications.summary import (
    KINDS,
    alert_summary,
    run_identity,
    scrub,
    workspace_of,
)
from airflow_image_catalog.notifications.webhook import WebhookNotifier
from airflow_image_catalog.storage import exists, list_objects, read_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout, is_chunk_document
from airflow_image_catalog.workspace.manifest import safe_run_key

COST_TASK = "cost_check"
GATE_TASK = "quality_gate"
OUTCOME_TASK = "outcome"


class ChannelSkipped(Exception):
    """A channel is not configured (e.g. its connection does not exist): skip it, do not fail."""


def alert_kind(context: Mapping[str, Any]) -> str:
    """Which alert a failed (or skipped) task calls for."""
    task_id = run_identity(context)["task_id"] or ""
    if task_id == COST_TASK:
        return "budget_breach"
    if task_id == OUTCOME_TASK:  # the run's verdict: what failed, with the published / held counts
        return "run_failed"
    if task_id == GATE_TASK:
        exception = context.get("exception")
        below = type(exception).__name__ == "QualityGateFailed" or "pass rate" in str(exception or "")
        return "low_pass_rate" if below else "gate_failure"
    return "task_failure"


def read_run_state(workspace: str | None, run_id: str | None) -> dict[str, Any]:
    """The run's report, cost decision and gate manifests, whichever exist (best effort: an
    unreadable file only makes the alert shorter)."""
    state: dict[str, Any] = {"report": None, "decision": None, "gates": [], "possibly_billed": []}
    if not workspace or not run_id:
        return state

    layout = WorkspaceLayout(workspace)
    run = layout.run_for({"run_id": run_id})
    for key, uri in (("report", run.report_json), ("decision", run.cost_decision)):
        try:
            state[key] = read_json(uri) if exists(uri) else None
        except Exception:  # noqa: BLE001 - see the docstring
            state[key] = None
    try:
        quality = run.quality
        uris = [o.uri for o in list_objects(quality) if o.uri.rsplit("/", 1)[0] == quality and is_chunk_document(o.uri)]
        state["gates"] = [read_json(u) for u in uris]
    except Exception:  # noqa: BLE001
        state["gates"] = []
    try:  # the ledger knows them before any report exists (an edit task that failed)
        from airflow_image_catalog.pipeline.costing.ledger import Ledger, possibly_billed_calls

        state["possibly_billed"] = possibly_billed_calls(Ledger(workspace).entries(run_key=safe_run_key(str(run_id))))
    except Exception:  # noqa: BLE001
        state["possibly_billed"] = []
    return state


def _connection_exists(conn_id: str) -> Any:
    """The connection, or :class:`ChannelSkipped` when it is not defined."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or no way to reach the secrets at all
        raise ChannelSkipped(f"connection {conn_id!r} is not defined ({type(exc).__name__})") from None


class CatalogAlertNotifier(BaseNotifier):
    """Alert on a catalog run's failure through every configured channel.

    Use as ``on_failure_callback=[CatalogAlertNotifier(webhook_conn_id="alerts_webhook",
    smtp_conn_id="smtp_default", to="ops@example.com", slack_conn_id="slack_alerts")]``
    (``on_skipped_callback`` on ``cost_check`` too, for the ``skip`` budget policy).
    With no channel configured it only logs the alert.

    :param webhook_conn_id: ``http`` connection of a JSON webhook (see :class:`WebhookNotifier`).
    :param webhook_url: a plain webhook URL instead of a connection.
    :param smtp_conn_id: ``smtp`` connection (host, port, ``from_email`` / ``disable_tls`` /
        ``disable_ssl`` extras); e-mail is sent only when ``to`` is set.
    :param to: e-mail recipients (comma-separated or a list).
    :param from_email: sender; empty = the connection's ``from_email`` extra.
    :param slack_conn_id: ``slackwebhook`` connection (Slack provider).
    :param apprise_conn_id: ``apprise`` connection (needs apache-airflow-providers-apprise).
    :param workspace: fallback workspace when the context has no ``workspace`` param.
    :param kind: force the alert kind instead of deriving it from the task.
    :param timeout: seconds per webhook attempt.
    :param retries: further webhook attempts on transient errors.
    """

    template_fields: Sequence[str] = ("webhook_conn_id", "webhook_url", "smtp_conn_id", "to", "from_email",
                                      "slack_conn_id", "apprise_conn_id", "workspace")

    def __init__(
        self,
        *,
        webhook_conn_id: str | None = None,
        webhook_url: str | None = None,
        smtp_conn_id: str | None = None,
        to: str | list[str] | None = None,
        from_email: str | None = None,
        slack_conn_id: str | None = None,
        apprise_conn_id: str | None = None,
        workspace: str | None = None,
        kind: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.webhook_conn_id = webhook_conn_id
        self.webhook_url = webhook_url
        self.smtp_conn_id = smtp_conn_id
        self.to = to
        self.from_email = from_email
        self.slack_conn_id = slack_conn_id
        self.apprise_conn_id = apprise_conn_id
        self.workspace = workspace
        self.kind = kind
        self.timeout = timeout
        self.retries = retries
        self.results: dict[str, str] = {}

    def summary(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The alert for this context, with the run's report, decision and gates where they exist."""
        kind = self.kind or alert_kind(context)
        if not workspace_of(context) and self.workspace:
            context = {**context, "params": {**dict(context.get("params") or {}), "workspace": self.workspace}}
        state = read_run_state(workspace_of(context), run_identity(context)["run_id"])
        return alert_summary(kind, context, state["report"], state["decision"], gates=state["gates"],
                             possibly_billed=state["possibly_billed"])

    def channels(self) -> dict[str, Callable[[dict[str, Any], Mapping[str, Any]], None]]:
        """The configured channels, by name."""
        channels: dict[str, Callable[[dict[str, Any], Mapping[str, Any]], None]] = {}
        if self.webhook_conn_id or self.webhook_url:
            channels["webhook"] = self._webhook
        if self.to:
            channels["smtp"] = self._smtp
        if self.slack_conn_id:
            channels["slack"] = self._slack
        if self.apprise_conn_id:
            channels["apprise"] = self._apprise
        return channels

    def _webhook(self, summary: dict[str, Any], context: Mapping[str, Any]) -> None:
        if self.webhook_conn_id and not self.webhook_url:
            _connection_exists(self.webhook_conn_id)
        WebhookNotifier(http_conn_id=self.webhook_conn_id, url=self.webhook_url, payload=summary,
                        timeout=self.timeout, retries=self.retries).notify(context)

    def _smtp(self, summary: dict[str, Any], context: Mapping[str, Any]) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        conn_id = self.smtp_conn_id or "smtp_default"
        conn = _connection_exists(conn_id)
        sender = self.from_email or (conn.extra_dejson or {}).get("from_email")
        if not sender:
            raise ChannelSkipped(f"no from_email: set it or the {conn_id!r} connection's from_email extra")
        links = "".join(f'<li>{html.escape(name)}: <a href="{html.escape(uri)}">{html.escape(uri)}</a></li>'
                        for name, uri in summary["links"].items())
        body = (f"<h3>{html.escape(summary['title'])}</h3><pre>{html.escape(summary['text'])}</pre>"
                + (f"<ul>{links}</ul>" if links else ""))
        # notify(), not __call__, and every field given: the message is final text, never a Jinja
        # template (an exception message with "{{" must not be rendered)
        SmtpNotifier(to=self.to, from_email=sender, subject=summary["title"], html_content=body,
                     smtp_conn_id=conn_id).notify(context)

    def _slack(self, summary: dict[str, Any], context: Mapping[str, Any]) -> None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        _connection_exists(self.slack_conn_id)
        text = f"*{summary['title']}*\n```{summary['text']}```"
        SlackWebhookNotifier(slack_webhook_conn_id=self.slack_conn_id, text=text, timeout=int(self.timeout),
                             unfurl_links=False).notify(context)

    def _apprise(self, summary: dict[str, Any], context: Mapping[str, Any]) -> None:
        try:
            from airflow.providers.apprise.notifications.apprise import AppriseNotifier
        except ImportError:
            raise ChannelSkipped("apache-airflow-providers-apprise is not installed") from None
        _connection_exists(self.apprise_conn_id)
        AppriseNotifier(body=summary["text"], title=summary["title"], notify_type="failure",
                        apprise_conn_id=self.apprise_conn_id).notify(context)

    def notify(self, context: Any) -> None:
        """Build the alert and deliver it on every channel; problems are logged, never raised."""
        self.results = {}
        try:
            summary = self.summary(context)
        except Exception as exc:  # noqa: BLE001 - still say that something failed
            self.log.warning("alert summary incomplete (%s): %s", type(exc).__name__, scrub(exc))
            identity = run_identity(context)
            summary = {"kind": self.kind or "task_failure", "title": scrub(f"[{identity['dag_id']}] failure: "
                                                                           f"{identity['task_id']}"),
                       "text": scrub(f"{identity} failed: {context.get('exception')}"), "fields": identity,
                       "links": {}}
        self.log.info("alert %s: %s", summary["kind"], summary["title"])
        for name, deliver in self.channels().items():
            try:
                deliver(summary, context)
            except ChannelSkipped as exc:
                self.results[name] = f"skipped: {exc}"
                self.log.warning("alert channel %s skipped: %s", name, exc)
            except Exception as exc:  # noqa: BLE001 - one broken channel must not stop the others
                self.results[name] = f"failed: {type(exc).__name__}"
                self.log.warning("alert channel %s failed: %s: %s", name, type(exc).__name__, scrub(exc))
            else:
                self.results[name] = "sent"

    async def async_notify(self, context: Any) -> None:
        """For the triggerer: the SMTP, Slack and connection look-ups are blocking, so run in a thread."""
        await asyncio.to_thread(self.notify, context)


async def deadline_missed(context: Mapping[str, Any] | None = None, **channels: Any) -> str:
    """Deadline Alert callback (an ``AsyncCallback`` path, run by the triggerer when a run is late).

    Returns the channel results as JSON text: the triggerer stores a callback's return value in a
    text column (``callback.output``), and a dict there fails the insert and stops the triggerer.

    :param context: what the scheduler passes: ``{"dag_run": {...}, "deadline": {...}}``.
    :param channels: :class:`CatalogAlertNotifier` arguments (connection ids, ``to``, ``workspace``).
    """
    notifier = CatalogAlertNotifier(kind="deadline_missed", **channels)
    await notifier.async_notify(dict(context or {}))
    return json.dumps(notifier.results, sort_keys=True)


def nightly_deadline(hours: float = 6.0, callback: Any = None, *, reference: Any = None,
                     name: str = "catalog_refresh_not_done", **channels: Any):
    """The ``DeadlineAlert`` for the nightly refresh: alert when a run is not done ``hours`` after
    its logical date, i.e. by a set time of day for a scheduled ``@daily`` run (midnight + 6 h =
    06:00 UTC), however late it was queued. Runs without a logical date (manual runs may have
    none in Airflow 3) get no deadline; ``reference=DeadlineReference.DAGRUN_QUEUED_AT`` counts
    from when the run was queued instead (``dag.test()`` never queues, so it records no deadline).

    :param hours: how long a run may take.
    :param callback: a ``Callback``, an awaitable callable or its import path; None =
        :func:`deadline_missed` with ``channels`` as its kwargs.
    :param reference: a ``DeadlineReference``; None = the run's logical date.
    :param channels: :class:`CatalogAlertNotifier` arguments (JSON-serializable: connection ids, ``to``,
        ``workspace``); they are stored with the serialized DAG, so never put secrets here.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
    from airflow.sdk.definitions.callback import Callback

    if not hours > 0:
        raise ValueError(f"the deadline must be after the reference: hours={hours!r}")
    if not isinstance(callback, Callback):
        callback = AsyncCallback(callback or deadline_missed, kwargs=dict(channels))
    elif channels:
        raise ValueError("pass channels in the Callback's kwargs when giving a Callback")
    return DeadlineAlert(reference=reference or DeadlineReference.DAGRUN_LOGICAL_DATE,
                         interval=timedelta(hours=hours), callback=callback, name=name)
