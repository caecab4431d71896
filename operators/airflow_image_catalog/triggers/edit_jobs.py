"""EditJobsTrigger: polls many asynchronous edit jobs at once (async httpx, never blocking).

The deferrable :class:`~airflow_image_catalog.operators.image_edit.ImageEditOperator` submits a
chunk's jobs, records their ids in the chunk's jobs manifest, and defers here. The
trigger polls every pending job concurrently through the backend the connection
names (the key is read in the triggerer, never serialized), keeps transient poll
errors (429/5xx/connection) as pending, and hands back to the operator when every
job is finished, or as soon as a ready result has waited ``hold_ready`` seconds
(signed result URLs expire: BFL's after 10 minutes), or at ``deadline`` (epoch
seconds), when the outstanding jobs are cancelled where the provider allows.

It ends with exactly one event (:mod:`airflow_image_catalog.triggers.events`):
``success`` (every job finished, or a ready result must be fetched) or ``timeout`` (the
deadline passed; the outstanding jobs are reported as retryable ``timeout`` failures), both
``{"status", "results": {key: job status}}``, or ``error`` with a ``message`` when polling
itself broke (the connection cannot be read, a backend bug): nothing escapes ``run()``, so the
task's retries resume the jobs recorded in the chunk's jobs manifest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_image_catalog.backends import build_backend
from airflow_image_catalog.backends.base import EditError, is_batch
from airflow_image_catalog.hooks.image_edit import ImageEditHook, with_overrides
from airflow_image_catalog.triggers.events import (
    SUCCESS,
    TIMEOUT,
    error_event,
    validate_execute_complete_event,
)


def _final(exc) -> dict[str, Any]:
    """A permanent poll error as a failed job result."""
    return {"state": "failed", "result": {}, "code": exc.code, "message": str(exc), "retryable": False}


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    """Run a trigger in this process until its event (the non-deferrable path), checked as
    ``execute_complete`` checks it: an ``error`` event raises here too."""
    async for event in trigger.run():
        return validate_execute_complete_event(event.payload, trigger=type(trigger).__name__)
    return validate_execute_complete_event(None, trigger=type(trigger).__name__)


class EditJobsTrigger(BaseTrigger):
    """Poll asynchronous provider jobs until they finish.

    :param conn_id: the ``image_edit`` connection (its backend polls the jobs).
    :param jobs: ``{key: job}``, each job as the backend's ``asubmit`` returned it.
    :param poll_interval: seconds between polling rounds.
    :param deadline: epoch seconds after which outstanding jobs are cancelled and reported.
    :param hold_ready: seconds a ready result may wait for the others before handing back.
    :param overrides: the connection settings the edit task replaced (the cost check's downgrade).
    """

    def __init__(self, conn_id: str, jobs: dict[str, dict[str, Any]], poll_interval: float = 5.0,
                 deadline: float | None = None, hold_ready: float = 120.0,
                 overrides: dict[str, Any] | None = None):
        super().__init__()
        self.overrides = overrides or {}
        self.conn_id = conn_id
        self.jobs = jobs
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.hold_ready = hold_ready

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("airflow_image_catalog.triggers.edit_jobs.EditJobsTrigger",
                {"conn_id": self.conn_id, "jobs": self.jobs, "poll_interval": self.poll_interval,
                 "deadline": self.deadline, "hold_ready": self.hold_ready, "overrides": self.overrides})

    async def _backend(self):
        return build_backend(with_overrides(await ImageEditHook(self.conn_id).abackend_config(), self.overrides))

    async def _poll(self, backend, job: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return (await backend.apoll(job)).to_dict()
        except EditError as exc:
            if exc.retryable:  # transient: poll again next round
                self.log.warning("poll of job %s failed transiently: %s", job.get("id"), exc)
                return None
            return _final(exc)

    async def _poll_round(self, backend, keys: list[str]) -> list[dict[str, Any] | None]:
        """One round: the backend's ``apoll_many`` (one request per batch) or one ``apoll`` per job."""
        if not is_batch(backend):
            return list(await asyncio.gather(*(self._poll(backend, self.jobs[key]) for key in keys)))
        try:
            statuses = await backend.apoll_many({key: self.jobs[key] for key in keys})
        except EditError as exc:
            if exc.retryable:
                self.log.warning("poll of %d jobs failed transiently: %s", len(keys), exc)
                return [None] * len(keys)
            return [_final(exc)] * len(keys)
        return [statuses[key].to_dict() for key in keys]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._collect()
        except Exception as exc:  # never out of run(): the task resumes with an error event and retries
            self.log.exception("polling %d jobs through connection %s failed", len(self.jobs), self.conn_id)
            event = error_event(f"polling {len(self.jobs)} jobs through connection {self.conn_id!r} failed: "
                                f"{type(exc).__name__}: {exc}")
        yield TriggerEvent(event)

    async def _collect(self) -> dict[str, Any]:
        """Poll until the jobs are done (``success``) or the deadline passed (``timeout``): the event."""
        # The first poll waits one interval: jobs were submitted a moment ago, and in Airflow 3.3.2 an
        # event that fires before the scheduler has handled the deferring process's exit fails the
        # task that already resumed ("state changed externally").
        await asyncio.sleep(self.poll_interval)
        backend = await self._backend()
        results: dict[str, dict[str, Any]] = {}
        first_ready: float | None = None
        status = SUCCESS
        try:
            while True:
                pending = [key for key in self.jobs if key not in results]
                polled = await self._poll_round(backend, pending)
                for key, job_status in zip(pending, polled, strict=True):
                    if job_status is not None and job_status["state"] != "pending":
                        results[key] = job_status
                        if job_status["state"] == "ready" and first_ready is None:
                            first_ready = time.monotonic()
                outstanding = [key for key in self.jobs if key not in results]
                if not outstanding or (first_ready is not None and time.monotonic() - first_ready >= self.hold_ready):
                    break
                if self.deadline is not None and time.time() >= self.deadline:
                    for key in outstanding:
                        cancelled = await backend.acancel(self.jobs[key])
                        results[key] = {"state": "failed", "result": {}, "code": "timeout", "retryable": True,
                                        "message": f"job {self.jobs[key].get('id')} not finished by the deadline"
                                                   f"{' (cancelled)' if cancelled else ''}"}
                    status = TIMEOUT
                    break
                await asyncio.sleep(self.poll_interval)
        finally:
            await backend.transport.aclose()
        return {"status": status, "results": results}

    async def on_kill(self) -> None:
        """The task was killed while deferred: cancel the jobs where the provider allows."""
        backend = await self._backend()
        try:
            await asyncio.gather(*(backend.acancel(job) for job in self.jobs.values()), return_exceptions=True)
        finally:
            await backend.transport.aclose()
