"""The shared check of a trigger event where a deferred task resumes."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_image_catalog.triggers.events import (
    TriggerEventError,
    error_event,
    validate_execute_complete_event,
)


def test_success_and_timeout_come_back_as_they_are():
    for event in ({"status": "success", "results": {"a": {}}}, {"status": "timeout", "message": "late"}):
        assert validate_execute_complete_event(event) is event


@pytest.mark.parametrize(("event", "message"), [
    (None, "T error: the task resumed without an event"),
    ("success", "T error: the event is not a mapping: 'success'"),
    ({"results": {}}, "T error: unexpected event status None"),
    ({"status": "done"}, "T error: unexpected event status 'done'"),
    (error_event("the connection is gone"), "T error: the connection is gone"),
    ({"status": "error"}, "T error: no message"),
])
def test_anything_else_fails_the_try_with_a_clear_message(event, message):
    with pytest.raises(TriggerEventError) as raised:
        validate_execute_complete_event(event, trigger="T")
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, AirflowException)  # retries apply: the jobs were recorded before deferring
