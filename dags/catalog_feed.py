"""Downstream of catalog_refresh: rebuild the storefront's image feed whenever the catalog is published.

Scheduled on the ``catalog-published`` asset alias: every catalog_refresh run that publishes
images adds an asset event on its published location, carrying the published manifest's URI,
and this DAG writes ``feed.csv`` beside the published images (image id, published URI,
sha256, source sha256, run) for a storefront or a CDN sync to pick up.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, AssetAlias, task

PUBLISHED = AssetAlias("catalog-published")

with DAG(
    dag_id="catalog_feed",
    description="Rebuild the storefront image feed after each catalog publish",
    schedule=[PUBLISHED],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["catalog", "downstream"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[PUBLISHED])
    def write_feed(*, inlet_events=None) -> list[str]:
        """One feed per published location that changed since this DAG last ran."""
        from airflow_image_catalog.pipeline.publishing.feed import write_feed_for

        events = list(inlet_events[PUBLISHED]) if inlet_events is not None else []
        return [write_feed_for(event.asset.uri, event.extra) for event in events]

    write_feed()
