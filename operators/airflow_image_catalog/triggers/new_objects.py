"""NewObjectsTrigger: waits in the triggerer until a source prefix holds new or changed objects.

The deferrable :class:`~airflow_image_catalog.sensors.new_images.NewImagesSensor` defers here so
waiting for tonight's photo drop holds no worker slot. Each poll lists the source and
reads the published manifest in a worker thread (boto3 and file I/O block), compares
them with :func:`airflow_image_catalog.pipeline.discovery.changes.new_or_changed`, and sleeps ``poke_interval``.
A StorageError (an S3 5xx burst after botocore's retries, a source folder not created
yet) is transient: logged, polled again, reported as ``last_error`` if the deadline
passes. A manifest of the wrong shape is permanent: an ``error`` event at once, as is
anything unexpected: nothing escapes ``run()`` (see :mod:`airflow_image_catalog.triggers.events`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_image_catalog.pipeline.discovery.changes import find_new_objects, summary
from airflow_image_catalog.storage import StorageError
from airflow_image_catalog.triggers.events import SUCCESS, TIMEOUT, error_event


class NewObjectsTrigger(BaseTrigger):
    """Poll ``source`` until it holds objects the published manifest does not have (or has changed).

    Exactly one event: ``{"status": "success", "count": n, "uris": [first 100], "truncated": bool}``,
    ``{"status": "timeout", "message": str, "last_error": str | None, "polls": n}`` at ``deadline``, or
    ``{"status": "error", "message": str}`` for an unreadable published manifest (or a bug).

    :param source: URI prefix to list (``s3://bucket/photos``, ``file:///data/photos``).
    :param published_manifest: URI of the published manifest; missing = everything is new.
    :param poke_interval: seconds between polls.
    :param deadline: epoch seconds after which a ``timeout`` event ends the wait (None: never).
    :param extensions: object suffixes that count (e.g. ``[".jpg", ".png"]``); None = every object.
    :param ignore_prefixes: keys below ``source`` starting with these are ignored (``["masks/"]``).
    """

    def __init__(self, source: str, published_manifest: str | None = None, poke_interval: float = 60.0,
                 deadline: float | None = None, extensions: list[str] | None = None,
                 ignore_prefixes: list[str] | None = None):
        super().__init__()
        self.source = source
        self.published_manifest = published_manifest
        self.poke_interval = float(poke_interval)
        self.deadline = deadline
        self.extensions = sorted(extensions) if extensions is not None else None
        self.ignore_prefixes = list(ignore_prefixes or [])
        self.polls = 0  # polls run() has completed (logs, tests)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("airflow_image_catalog.triggers.new_objects.NewObjectsTrigger",
                {"source": self.source, "published_manifest": self.published_manifest,
                 "poke_interval": self.poke_interval, "deadline": self.deadline,
                 "extensions": self.extensions, "ignore_prefixes": self.ignore_prefixes})

    def _find(self):
        return find_new_objects(self.source, self.published_manifest, self.extensions, self.ignore_prefixes)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # never out of run(): the sensor resumes with an error event
            self.log.exception("waiting for new objects under %s failed", self.source)
            event = error_event(f"waiting for new objects under {self.source} failed: {type(exc).__name__}: {exc}")
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        """Poll until something is new (``success``), the deadline (``timeout``) or a bad manifest (``error``)."""
        last_error: str | None = None
        while True:
            try:
                found = await asyncio.to_thread(self._find)
            except StorageError as exc:
                self.polls += 1
                last_error = str(exc)
                self.log.warning("poll %d of %s failed, polling again: %s", self.polls, self.source, exc)
            except ValueError as exc:  # malformed manifest JSON or shape: polling again will not help
                return error_event(f"{self.published_manifest}: {exc}")
            else:
                self.polls += 1
                last_error = None
                if found:
                    self.log.info("%d new or changed objects under %s (poll %d)", len(found), self.source, self.polls)
                    return {"status": SUCCESS, **summary(found)}
            wait = self.poke_interval
            if self.deadline is not None:
                left = self.deadline - time.time()
                if left <= 0:
                    return {"status": TIMEOUT, "message": f"nothing new under {self.source} by the deadline",
                            "last_error": last_error, "polls": self.polls}
                wait = min(wait, left)
            await asyncio.sleep(wait)
