"""The storefront feed the example downstream DAG (``dags/catalog_feed.py``) writes: plain CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from airflow_image_catalog.storage import join_uri, read_json, write_bytes

FEED_COLUMNS = ("image_id", "published_uri", "sha256", "source_sha256", "width", "height", "run_id")


def feed_csv(published_manifest: dict[str, Any]) -> bytes:
    """Every published image, one row each, sorted by image id."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FEED_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for image_id in sorted(published_manifest.get("images", {})):
        writer.writerow(published_manifest["images"][image_id])
    return buffer.getvalue().encode()


def write_feed_for(published_uri: str, extra: dict[str, Any]) -> str:
    """Write ``feed.csv`` beside the published images from the manifest the asset event names."""
    manifest = read_json(extra["published_manifest"])
    return write_bytes(join_uri(published_uri, "feed.csv"), feed_csv(manifest))
