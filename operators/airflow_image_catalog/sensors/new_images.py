"""NewImagesSensor: start a catalog refresh only when the source holds new or changed images."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.pipeline.discovery.changes import MASKS_PREFIX, find_new_images, image_extensions
from airflow_image_catalog.storage import StorageError
from airflow_image_catalog.triggers.events import TIMEOUT, validate_execute_complete_event
from airflow_image_catalog.triggers.new_objects import NewObjectsTrigger


class NewImagesSensor(ReportsLineage, BaseSensorOperator):
    """Wait until ``source`` holds at least one image that is not published yet, or has changed.

    An image counts when its URI is not any published entry's ``source_uri``, or its
    size (or, where both are known, its S3 ETag) differs from what was published.
    Files under ``masks/`` and non-image files are ignored. Returns (XCom)
    ``{"count": n, "uris": [first 100 URIs], "truncated": bool}``.

    A storage error while poking (an S3 outage, a drop folder not created yet) is
    logged and the sensor pokes again; ``timeout`` bounds the wait as for any sensor.
    With ``deferrable=True`` the sensor checks once and, if nothing is new, waits in
    the triggerer (:class:`~airflow_image_catalog.triggers.new_objects.NewObjectsTrigger`)
    instead of holding a worker slot.

    :param source: URI prefix of the source images (``s3://bucket/photos``, ``file://...``). Templated.
    :param published_manifest: URI of the published manifest JSON; may not exist yet
        (the first run: everything is new). Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poke_interval: seconds (or a timedelta) between checks.
    :param timeout: seconds (or a timedelta) before the sensor gives up (default:
        ``[sensors] default_timeout``); with ``soft_fail=True`` it skips instead of failing.
    """

    lineage_function = "source_operator_lineage"
    template_fields: Sequence[str] = ("source", "published_manifest")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        source: str,
        published_manifest: str | None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.source = source
        self.published_manifest = published_manifest
        self.deferrable = deferrable

    def poke(self, context) -> PokeReturnValue | bool:
        try:
            found = find_new_images(self.source, self.published_manifest)
        except StorageError as exc:
            self.log.warning("cannot check %s yet, poking again: %s", self.source, exc)
            return False
        if found is None:
            self.log.info("no new or changed images under %s", self.source)
            return False
        self.log.info("%d new or changed images under %s", found["count"], self.source)
        return PokeReturnValue(is_done=True, xcom_value=found)

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)  # images already there (the usual nightly case): no deferral
        if done:
            return done.xcom_value
        self.defer(
            trigger=NewObjectsTrigger(
                source=self.source,
                published_manifest=self.published_manifest,
                poke_interval=self.poke_interval,
                deadline=time.time() + self.timeout,
                extensions=image_extensions(),
                ignore_prefixes=[MASKS_PREFIX],
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = validate_execute_complete_event(event, trigger=f"NewObjectsTrigger on {self.source}")
        if event["status"] == TIMEOUT:
            message = f"no new or changed images under {self.source} within {self.timeout:.0f}s"
            if event.get("last_error"):
                message += f" (last error: {event['last_error']})"
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        self.log.info("%d new or changed images under %s", event["count"], self.source)
        return {key: event[key] for key in ("count", "uris", "truncated") if key in event}
