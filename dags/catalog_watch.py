"""Watch a drop location and refresh the catalog only when new or changed product photos arrive.

``NewImagesSensor`` compares the source listing with the published manifest (sizes and S3
ETags, no downloads) and, deferrable, waits in the triggerer without holding a worker
slot; when something is new it triggers ``catalog_refresh`` for the same locations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

from airflow_image_catalog.dag_params import shared_params
from airflow_image_catalog.sensors.new_images import NewImagesSensor

with DAG(
    dag_id="catalog_watch",
    description="Trigger catalog_refresh when new or changed images land in the source location",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["catalog", "image-edit"],
    params=shared_params("source", "workspace", "published"),  # catalog_refresh's, handed on to it
    doc_md=__doc__,
) as dag:
    new_images = NewImagesSensor(
        task_id="new_images",
        source="{{ params.source }}",
        published_manifest="{{ params.workspace }}/state/published_manifest.json",
        deferrable=True,
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(minutes=55),  # the next hourly run takes over
        soft_fail=True,  # nothing new this hour is not a failure
    )
    refresh = TriggerDagRunOperator(
        task_id="refresh",
        trigger_dag_id="catalog_refresh",
        conf={"source": "{{ params.source }}", "workspace": "{{ params.workspace }}",
              "published": "{{ params.published }}"},
    )
    new_images >> refresh
