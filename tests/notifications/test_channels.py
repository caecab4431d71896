"""Delivery: the webhook to a loopback receiver, e-mail to a loopback SMTP server, Slack through
the Slack provider to the same receiver; retries, redaction, and channels that are skipped."""

from __future__ import annotations

import email
import logging
from email import policy
from types import SimpleNamespace

import pytest

from airflow_image_catalog.notifications.catalog import CatalogAlertNotifier
from airflow_image_catalog.notifications.webhook import WebhookDeliveryError, WebhookNotifier, redact_url

CONTEXT = {"dag": SimpleNamespace(dag_id="catalog_refresh"), "run_id": "manual__1",
           "ti": SimpleNamespace(task_id="publish", map_index=-1, try_number=1, log_url=None),
           "exception": ValueError("disk full, token sk-live-0123456789abcdef"), "params": {}}


def _logged(caplog, capsys) -> str:
    """What was logged: Airflow's structlog writes to stdout/stderr, stdlib logging to caplog."""
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


def test_webhook_posts_json_with_connection_headers(receiver, connection):
    conn_id = connection("alerts_webhook", conn_type="http", host=receiver.url, extra={"X-Alert-Source": "catalog"})
    WebhookNotifier(http_conn_id=conn_id, endpoint="/hooks/catalog").notify(CONTEXT)

    request = receiver.requests[0]
    assert request["method"] == "POST" and request["path"] == "/hooks/catalog"
    assert request["headers"]["x-alert-source"] == "catalog"
    body = receiver.json()
    assert body["kind"] == "task_failure" and body["fields"]["task_id"] == "publish"
    assert "disk full" in body["fields"]["what_failed"] and "0123456789abcdef" not in receiver.requests[0]["body"].decode()


def test_webhook_retries_a_500_then_succeeds(receiver):
    receiver.fail_with = [500, 503]
    WebhookNotifier(url=receiver.url + "/in", payload={"hello": 1}, backoff=0.01).notify(CONTEXT)
    assert len(receiver.requests) == 3 and receiver.json() == {"hello": 1}


def test_webhook_gives_up_without_logging_the_secret(receiver, caplog, capsys):
    receiver.fail_with = [500, 500, 500]
    notifier = WebhookNotifier(url=receiver.url + "/in/aaaaaaaaaaaaaaaaaaaaaaaa?token=s3cr3t", payload={},
                               retries=2, backoff=0.01)
    with caplog.at_level(logging.INFO), pytest.raises(WebhookDeliveryError) as raised:
        notifier.notify(CONTEXT)
    assert len(receiver.requests) == 3
    logged = _logged(caplog, capsys) + str(raised.value)
    assert "attempt 3 of 3" in logged and "/in/***?<redacted>" in logged
    assert "s3cr3t" not in logged and "aaaaaaaaaaaaaaaaaaaaaaaa" not in logged


def test_webhook_does_not_retry_a_client_error(receiver):
    receiver.fail_with = [404]
    with pytest.raises(WebhookDeliveryError, match="HTTP 404"):
        WebhookNotifier(url=receiver.url, payload={}, backoff=0.01).notify(CONTEXT)
    assert len(receiver.requests) == 1


def test_redact_url():
    assert redact_url("https://u:p@h.example:8443/a/TTTTTTTTTTTTTTTTTTTTTTTT?sig=x#f") == \
        "https://h.example:8443/a/***?<redacted>"


def test_catalog_alert_by_email_and_slack(receiver, smtp_server, connection):
    port, received = smtp_server
    smtp = connection("alerts_smtp", conn_type="smtp", host="127.0.0.1", port=port,
                      extra={"from_email": "airflow@example.com", "disable_tls": True, "disable_ssl": True,
                             "timeout": 5, "retry_limit": 0})
    slack = connection("alerts_slack", conn_type="slackwebhook", password=f"{receiver.url}/services/T0/B0/XYZ")
    notifier = CatalogAlertNotifier(smtp_conn_id=smtp, to="ops@example.com", slack_conn_id=slack)
    notifier.notify(CONTEXT)

    assert notifier.results == {"smtp": "sent", "slack": "sent"}
    assert len(received) == 1 and received[0].rcpt_tos == ["ops@example.com"]
    message = email.message_from_bytes(received[0].content, policy=policy.default)
    assert message["Subject"] == "[catalog_refresh] task failure: publish (run manual__1)"
    html = message.get_body(("html",)).get_content()
    assert "ValueError: disk full" in html and "0123456789abcdef" not in html
    assert receiver.requests[0]["path"] == "/services/T0/B0/XYZ"
    assert "task failure: publish" in receiver.json()["text"]


def test_missing_connection_and_broken_channel_are_skipped_with_a_warning(receiver, caplog, capsys):
    receiver.fail_with = [500, 500, 500]
    notifier = CatalogAlertNotifier(webhook_conn_id="no_such_webhook", smtp_conn_id="no_such_smtp",
                                    to="ops@example.com", slack_conn_id="no_such_slack",
                                    apprise_conn_id="no_such_apprise", retries=0)
    with caplog.at_level(logging.WARNING):
        notifier.notify(CONTEXT)  # never raises
    assert set(notifier.results) == {"webhook", "smtp", "slack", "apprise"}
    assert all(result.startswith("skipped") for result in notifier.results.values()), notifier.results
    logged = _logged(caplog, capsys)
    assert "alert channel webhook skipped: connection 'no_such_webhook' is not defined" in logged
    assert "alert channel apprise skipped" in logged

    broken = CatalogAlertNotifier(webhook_url=receiver.url, retries=0, timeout=2)
    broken.notify(CONTEXT)
    assert broken.results == {"webhook": "failed: WebhookDeliveryError"}
