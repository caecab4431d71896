"""Downstream of catalog_refresh: rebuild the storefront's image feed whenever the catalog is published.

Scheduled on the ``catalog-published`` asset alias: every catalog_refresh run that publishes
images adds an asset event on its published location, carrying the published manifest's URI,
and this DAG writes ``feed.csv`` beside the published images (image id, published URI,
sha256, source sha256, run) for a storefront or a CDN sync to pick up.

A scheduled run follows the events that triggered it (the publishes since the last feed run); a
run started by hand brings every published location's feed up to date and only warns about
locations that are gone (see :mod:`airflow_image_catalog.pipeline.publishing.feed`). The DAG is
created unpaused: it does nothing until a catalog is published, and then it should.
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
    is_paused_upon_creation=False,
    tags=["catalog", "downstream"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[PUBLISHED])
    def write_feed(*, triggering_asset_events=None, inlet_events=None) -> dict:
        """One feed per published location: those this run was triggered for, or (by hand) all of them."""
        from airflow_image_catalog.pipeline.publishing.feed import PublishEvent, rebuild_feeds

        triggering = list(triggering_asset_events.get(PUBLISHED, ())) if triggering_asset_events else []
        events = triggering or (list(inlet_events[PUBLISHED]) if inlet_events is not None else [])
        return rebuild_feeds([PublishEvent(e.asset.uri, dict(e.extra or {}), e.timestamp) for e in events],
                             triggered=bool(triggering))

    write_feed()
