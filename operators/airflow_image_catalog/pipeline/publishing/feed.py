"""The storefront feed the example downstream DAG (``dags/catalog_feed.py``) writes: plain CSV.

A feed run looks at asset events on the ``catalog-published`` alias and writes one ``feed.csv`` per
published location, from the newest event of that location (a location's manifest is its current
state, so older events of the same location add nothing). Which events:

* a run the scheduler started for new publishes (``triggered=True``) follows exactly the events that
  triggered it; a location among those it cannot write fails the run, after the others are written;
* a run started by hand (``airflow dags test``, the UI's trigger button, ``make demo``) has no
  triggering events and brings every location in the alias's history up to date: a location whose
  manifest or storage is gone (an old bucket without credentials, a removed workspace) is skipped
  with a warning, never a failure.

A feed whose bytes would not change is not rewritten, so consumers that sync on modification time
see only real changes.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_image_catalog.storage import StorageError, exists, join_uri, read_bytes, read_json, write_bytes

log = logging.getLogger(__name__)

FEED_COLUMNS = ("image_id", "published_uri", "sha256", "source_sha256", "width", "height", "run_id")
FEED_NAME = "feed.csv"


@dataclass(frozen=True)
class PublishEvent:
    """What the feed needs of an asset event: the published location, the event's extra, when."""

    location: str
    extra: Mapping[str, Any]
    timestamp: datetime


def feed_csv(published_manifest: dict[str, Any]) -> bytes:
    """Every published image, one row each, sorted by image id."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FEED_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for image_id in sorted(published_manifest.get("images", {})):
        writer.writerow(published_manifest["images"][image_id])
    return buffer.getvalue().encode()


def newest_per_location(events: Iterable[PublishEvent]) -> list[PublishEvent]:
    """The latest event of each location, oldest location first."""
    newest: dict[str, PublishEvent] = {}
    for event in events:
        location = event.location.rstrip("/")
        if location not in newest or event.timestamp >= newest[location].timestamp:
            newest[location] = event
    return sorted(newest.values(), key=lambda e: e.timestamp)


def write_feed_for(published_uri: str, extra: Mapping[str, Any]) -> tuple[str, bool]:
    """``feed.csv`` beside the published images from the manifest the event names: (URI, rewritten)."""
    manifest_uri = extra.get("published_manifest")
    if not manifest_uri:
        raise StorageError(f"the asset event on {published_uri} names no published manifest")
    body = feed_csv(read_json(manifest_uri))
    target = join_uri(published_uri, FEED_NAME)
    if exists(target) and read_bytes(target) == body:
        return target, False
    return write_bytes(target, body), True


def rebuild_feeds(events: Iterable[PublishEvent], *, triggered: bool) -> dict[str, list[Any]]:
    """Bring the feed of each location in ``events`` up to date (see the module docstring).

    Returns ``{"written": [feed URI], "unchanged": [feed URI], "skipped": [{"location", "reason"}]}``.
    """
    outcome: dict[str, list[Any]] = {"written": [], "unchanged": [], "skipped": []}
    latest = newest_per_location(events)
    for event in latest:
        try:
            uri, rewritten = write_feed_for(event.location, event.extra)
        except (StorageError, OSError, ValueError) as exc:  # unreachable, removed, unreadable
            outcome["skipped"].append({"location": event.location, "reason": str(exc)})
            log.warning("feed for %s skipped (%s published at %s): %s", event.location,
                        "triggering event" if triggered else "history", event.timestamp.isoformat(), exc)
            continue
        outcome["written" if rewritten else "unchanged"].append(uri)
    if triggered and outcome["skipped"]:
        raise StorageError(f"could not write the feed of {len(outcome['skipped'])} of {len(latest)} published "
                           f"locations this run was triggered for: "
                           + "; ".join(f"{s['location']}: {s['reason']}" for s in outcome["skipped"]))
    return outcome
