"""Human review of quarantined catalog images (Airflow's "Required actions" page).

Trigger it after a catalog_refresh run quarantined images, or let ops schedule it; pass
``{"workspace": ..., "published": ...}`` as the run's conf for other locations.
The reviewer approves all, rejects all, or approves a listed subset; approved images
are published and every decision is kept in the image's quarantine record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_image_catalog.config.locations import catalog_location
from airflow_image_catalog.operators.review import QuarantineReviewOperator

with DAG(
    dag_id="catalog_review",
    description="Approve or reject quarantined catalog images",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["catalog", "quality", "review"],
    doc_md=__doc__,
) as dag:
    # Locations come from the trigger's conf, not DAG params: a human-in-the-loop form shows every
    # param of its task, and the reviewer should see only the decision fields.
    QuarantineReviewOperator(
        task_id="review_quarantine",
        workspace=f"{{{{ dag_run.conf.get('workspace') or '{catalog_location('work')}' }}}}",
        published=f"{{{{ dag_run.conf.get('published') or '{catalog_location('published')}' }}}}",
        response_timeout=timedelta(days=3),
    )
