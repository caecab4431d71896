"""Nightly catalog refresh: discover new and changed images, check their rights and the cost, edit them in
mapped chunks, gate their quality, publish.

A chunk that fails its edit or its gate fails the run (and alerts) without holding back the rest:
every image that passed is published and the report says each chunk's status and reason
(``publish_policy="strict"``: nothing is published when anything failed).

Every location is a DAG param, so one deployment serves many catalogs:
trigger with ``{"source": "...", "recipe": "seasonal_background_swap"}`` to override.
The embedded defaults (local files under ``$CATALOG_HOME``, the local engine)
run offline. Heavy imports happen inside the operators' ``execute``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetAlias, Param, conf

from airflow_image_catalog.config.locations import catalog_location
from airflow_image_catalog.dag_params import BUDGETS, from_params, shared_params
from airflow_image_catalog.notifications.catalog import CatalogAlertNotifier, nightly_deadline
from airflow_image_catalog.operators.check_config import CheckRunConfigOperator
from airflow_image_catalog.operators.cost_check import CostCheckOperator
from airflow_image_catalog.operators.discover import DiscoverImagesOperator
from airflow_image_catalog.operators.escalate import EscalateOperator
from airflow_image_catalog.operators.image_edit import ImageEditOperator
from airflow_image_catalog.operators.publish import PublishOperator, RunOutcomeOperator
from airflow_image_catalog.operators.quality_gate import QualityGateOperator
from airflow_image_catalog.operators.rights_check import RightsCheckOperator

#: downstream DAGs schedule on this alias; each run that publishes adds an event on the published location
PUBLISHED = AssetAlias("catalog-published")
#: edit task instances at once: the edit task's max_active_tis_per_dag, and what the default chunking fills
EDIT_SLOTS = 8
#: where alerts go; a connection that is not defined is skipped with a warning (ids only: never secrets here)
ALERT_CHANNELS = {"webhook_conn_id": "catalog_alerts_webhook", "smtp_conn_id": "smtp_default",
                  "slack_conn_id": "catalog_alerts_slack"}
ALERT = CatalogAlertNotifier(**ALERT_CHANNELS, to="{{ var.value.get('catalog_alert_email', '') }}")

with DAG(
    dag_id="catalog_refresh",
    description="Edit new and changed product photos with a recipe and publish them",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["catalog", "image-edit"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True,
                  "on_failure_callback": [ALERT]},  # failures, budget breaches, gate failures, low pass rates
    # done by 06:00 UTC, or an alert. Off where runs go through dag.test() (the demo, the tests): Airflow
    # 3.3.2's dag.test() cannot finish a successful run of a DAG with deadlines (it hands the unsaved
    # alert definitions where the scheduler hands their ids), so they set [operators] catalog_deadline=False.
    deadline=(nightly_deadline(6, workspace=catalog_location("work"), **ALERT_CHANNELS)
              if conf.getboolean("operators", "catalog_deadline", fallback=True) else None),
    params={
        **shared_params("source", "workspace", "published", "recipe", "backend_conn_id"),
        "chunk_size": Param(None, type=["null", "integer"], minimum=1, maximum=10_000,
                            description="images per mapped edit task; empty = as many as fill the edit slots"),
        "concurrency": Param(None, type=["null", "integer"], minimum=1, maximum=256,
                             description="images in flight per chunk; empty = the connection's max_concurrency"),
        "max_failure_rate": Param(0.5, type="number", minimum=0, maximum=1,
                                  description="fail an edit chunk when more than this share fails finally"),
        "only_changed": Param(True, type="boolean",
                              description="edit only images not yet published from the same bytes and recipe"),
        **shared_params("rights_policy", "rights_sidecar", "quality_profile"),
        "min_pass_rate": Param(0.8, type="number", minimum=0, maximum=1, description="fail a chunk below this pass rate"),
        **shared_params(*BUDGETS),
        "budget_policy": Param("fail", enum=["fail", "skip", "downgrade", "cap"],
                               description="on a budget breach: fail, skip the run, downgrade settings, or cap images"),
        "priority_file": Param("", type="string", description="JSON {image_id: priority} for the cap policy"),
        "compare_with": Param("openai:gpt-image-2", type="string",
                              description="also price the run on backend:model, for the report (empty: no)"),
        "publish_policy": Param("partial", enum=["partial", "strict"],
                                description="partial: publish every image that passed even when a chunk failed "
                                "(the run still fails); strict: publish nothing when any chunk or task failed"),
        "routing": Param(False, type="boolean", description="route each image to the cheapest candidate expected "
                         "to pass (learnt from the audit trail and the canary) and escalate the ones that fail the "
                         "gate once, to the next stronger candidate; off: every image on the connection"),
        "routing_candidates": Param("", type="string", description="routing: the candidate list (name or YAML "
                                    "file, weakest first); empty = the recipe's latest canary decision's"),
        "routing_target": Param(None, type=["null", "number"], minimum=0, maximum=1,
                                description="routing: the pass rate a route must be expected to reach; empty = "
                                "the canary decision's target"),
        "routing_explore_share": Param(0.05, type="number", minimum=0, maximum=0.5,
                                       description="routing: the share of images sent to another candidate, so "
                                       "estimates stay current (chosen by image: a rerun routes the same)"),
        "deferrable": Param(False, type="boolean", description="poll asynchronous backends (bfl, firefly, openai_batch) "
                            "from the triggerer instead of a worker slot"),
    },
    doc_md=__doc__,
) as dag:
    # conf keys, recipe, quality profile, source, budgets, connection: a mistake fails here in seconds, by name
    check_config = CheckRunConfigOperator(task_id="check_config")
    discover = DiscoverImagesOperator(
        task_id="discover",
        **from_params("source", "workspace", "chunk_size", "recipe", "only_changed"),
        edit_slots=EDIT_SLOTS,
    )
    rights_check = RightsCheckOperator(
        task_id="rights_check",
        chunk_manifest_uris=discover.output,
        **from_params("workspace", "recipe", "rights_policy", "rights_sidecar"),
    )
    cost_check = CostCheckOperator(
        task_id="cost_check",
        chunk_manifest_uris=rights_check.output,
        **from_params("recipe", "workspace", "backend_conn_id", "budget_run_usd", "budget_day_usd", "budget_month_usd"),
        policy="{{ params.budget_policy }}",
        **from_params("priority_file", "compare_with", "routing", "routing_candidates", "routing_target",
                      "routing_explore_share"),
        retries=0,  # a decision does not change on retry
        on_skipped_callback=[ALERT],  # the "skip" budget policy skips the run: still an alert
    )
    edit = ImageEditOperator.partial(
        task_id="edit",
        # deferrable is templated too: rendered to "True" / "False", read at runtime
        **from_params("recipe", "workspace", "backend_conn_id", "deferrable", "concurrency", "max_failure_rate"),
        max_active_tis_per_dag=EDIT_SLOTS,
    ).expand(chunk_manifest_uri=cost_check.output)
    quality_gate = QualityGateOperator.partial(
        task_id="quality_gate",
        workspace="{{ params.workspace }}",
        profile="{{ params.quality_profile }}",
        min_pass_rate="{{ params.min_pass_rate }}",
        retries=0,  # a verdict does not change on retry
        trigger_rule="all_done",  # gate the chunks whose edit succeeded even when another chunk's failed
    ).expand(edit_manifest_uri=edit.output)
    # a routed run's quarantined images, re-edited once on the next stronger candidate and gated again, one
    # chunk after the other once every edit and gate is done: the mid-run guard then sees all the run's spend,
    # so escalations never take the run past its budget (a run that is not routed: returns at once)
    escalate = EscalateOperator(
        task_id="escalate",
        **from_params("workspace", "backend_conn_id"),
        profile="{{ params.quality_profile }}",
        min_pass_rate="{{ params.min_pass_rate }}",
        trigger_rule="all_done",  # the gate fails a chunk below min_pass_rate: escalation may lift it
    )
    # runs once everything upstream is done (all_done): publishes what passed, reports every run
    publish = PublishOperator(
        task_id="publish",
        **from_params("published", "workspace"),
        policy="{{ params.publish_policy }}",
        outlets=[PUBLISHED],  # resolved at runtime to the published location's Asset
    )
    # the run's verdict: fails (and alerts) when the report says a chunk or a task failed
    outcome = RunOutcomeOperator(task_id="outcome")
    # check_config is the run's setup: when it fails, nothing downstream runs, whatever its trigger rule
    # (https://airflow.apache.org/docs/apache-airflow/stable/howto/setup-and-teardown.html)
    check_config.as_setup() >> discover
    quality_gate >> escalate >> publish >> outcome
