"""Consent for catalog images the rights check held back (Airflow's "Required actions" page).

catalog_refresh puts an image in the consent queue when its rights need a person: a face without a
model release on record, usage terms that restrict use, a constraint to read. Trigger this DAG (or let
ops schedule it); pass ``{"workspace": ...}`` as the run's conf for another location. The reviewer
approves all, rejects all, or approves a listed subset: approved images are edited by the next
catalog_refresh run, rejected ones are refused for good for those bytes; every answer joins the
image's audit trail.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_image_catalog.config.locations import catalog_location
from airflow_image_catalog.operators.consent import ConsentReviewOperator

with DAG(
    dag_id="catalog_consent",
    description="Give or refuse consent to edit catalog images held back by the rights check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["catalog", "rights", "review"],
    doc_md=__doc__,
) as dag:
    # locations come from the trigger's conf, not params: the human-in-the-loop form shows every param
    ConsentReviewOperator(
        task_id="review_consent",
        workspace=f"{{{{ dag_run.conf.get('workspace') or '{catalog_location('work')}' }}}}",
        response_timeout=timedelta(days=7),
    )
