"""Test-only DAGs whose one task fails, to prove that failure and deadline alerts are delivered.

Loaded as its own DAG bundle by ``tests/notifications/test_dag_alerts.py``; the receiver URL and
the workspace come from the environment the test sets before parsing.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_image_catalog.notifications.catalog import CatalogAlertNotifier, nightly_deadline

RECEIVER = os.environ.get("CATALOG_ALERT_TEST_URL", "http://127.0.0.1:9")
WORKSPACE = os.environ.get("CATALOG_ALERT_TEST_WORKSPACE", "/tmp/catalog-alert-test")


def _dag(dag_id: str, **kwargs) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             params={"workspace": WORKSPACE}, **kwargs) as dag:

        @task(task_id="edit", retries=0,
              on_failure_callback=[CatalogAlertNotifier(webhook_url=RECEIVER + "/alerts", retries=1)])
        def edit() -> None:
            raise RuntimeError("backend refused the edit (x-key: bfl-0123456789)")

        edit()
    return dag


forced_failure = _dag("alerting_forced_failure")
late = _dag("alerting_deadline", deadline=nightly_deadline(6, webhook_url=RECEIVER + "/late", workspace=WORKSPACE))
