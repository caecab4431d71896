"""The one shape of a trigger event, and its check where a deferred task resumes.

Every trigger of the package ends with exactly one event whose ``status`` is ``success``,
``error`` or ``timeout`` (the convention of apache/airflow's providers, e.g.
``providers/anthropic``'s batch and agent triggers). The event crosses the triggerer ->
worker boundary through the metadata DB, so a resuming task may be handed ``None`` or a
status it does not know (version skew between triggerer and worker); both must fail loudly
rather than look like success. Every ``execute_complete`` calls
:func:`validate_execute_complete_event` first (as the Anthropic and Amazon providers' do),
then handles ``success`` and ``timeout`` as its own policy says.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException

SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"
#: the statuses a trigger of this package ends with
EVENT_STATUSES = frozenset({SUCCESS, ERROR, TIMEOUT})


class TriggerEventError(AirflowException):
    """A deferred task resumed with no event, an unknown status, or an ``error`` event.

    An :class:`~airflow.sdk.exceptions.AirflowException`, so the task's retries apply: the
    operators record what they submitted before deferring, and a retry resumes it.
    """


def error_event(message: str, **fields: Any) -> dict[str, Any]:
    """The payload of an ``error`` event (``message`` says what failed, for the task's log)."""
    return {"status": ERROR, "message": message, **fields}


def validate_execute_complete_event(event: dict[str, Any] | None, *, trigger: str = "trigger") -> dict[str, Any]:
    """The event's payload when its status is ``success`` or ``timeout``; raises otherwise.

    :param event: what the task was resumed with.
    :param trigger: names the trigger in the error (e.g. ``"EditJobsTrigger"``).
    :raises TriggerEventError: no event, an unknown status, or an ``error`` event (its message).
    """
    if event is None:
        raise TriggerEventError(f"{trigger} error: the task resumed without an event")
    if not isinstance(event, dict):
        raise TriggerEventError(f"{trigger} error: the event is not a mapping: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise TriggerEventError(f"{trigger} error: unexpected event status {status!r}: {event!r}")
    if status == ERROR:
        raise TriggerEventError(f"{trigger} error: {event.get('message') or 'no message'}")
    return event
