"""Canary: which candidate (backend, model, quality, size, Batch or not) is enough for a recipe, from data.

Takes a stratified sample of the source (free features: size, backdrop, text, product fill), edits
it with every candidate of a list (weakest/cheapest first), gates and prices every result with the
catalog's own edit, gate, cost check and ledger, and writes per candidate the pass rate with its
Wilson 95 % interval, cost per image and per passing image, time per image and failure reasons. It
chooses the cheapest candidate whose lower bound meets ``target_pass_rate`` and records a versioned
routing decision (``<workspace>/routing/<recipe>/``) for ``catalog_refresh`` and the router.

The canary's spend is checked against the budgets before anything is paid and booked in the ledger
like any run's. Failures are measured, not queued for review: nothing a canary edits is published.
The shipped ``emulated_tiers`` list needs the local edit service (``make demo-router``): its tiers
are EMULATION with stated prices and defect rates; real quality differences come only from real
backends.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_image_catalog.dag_params import BUDGETS, from_params, shared_params
from airflow_image_catalog.operators.canary import (
    CanaryCostCheckOperator,
    CanaryDecideOperator,
    CanarySampleOperator,
)
from airflow_image_catalog.operators.check_config import CheckRunConfigOperator
from airflow_image_catalog.operators.discover import DiscoverImagesOperator
from airflow_image_catalog.operators.image_edit import ImageEditOperator
from airflow_image_catalog.operators.quality_gate import QualityGateOperator
from airflow_image_catalog.operators.rights_check import RightsCheckOperator

with DAG(
    dag_id="catalog_canary",
    description="Edit a stratified sample with each candidate, gate and price it, choose and record the routing",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["catalog", "image-edit", "routing"],
    params={
        **shared_params("source", "workspace", "recipe"),
        "backend_conn_id": Param("image_edit_default", type="string",
                                 description="image_edit connection; each candidate's settings apply over it"),
        "candidates": Param("emulated_tiers", type="string",
                            description="candidate list: a shipped name or a YAML file, weakest/cheapest first"),
        "sample_size": Param(40, type="integer", minimum=1, maximum=10_000, description="images in the sample"),
        "seed": Param("", type="string", description="the sample's seed; empty: the run id (a new sample each run)"),
        "target_pass_rate": Param(0.9, type="number", minimum=0, maximum=1,
                                  description="the chosen candidate's pass-rate lower bound (Wilson 95 %) must reach this"),
        **shared_params("quality_profile", "rights_policy", "rights_sidecar", *BUDGETS),
        "budget_policy": Param("fail", enum=["fail", "skip"], description="on a budget breach: fail or skip the canary"),
    },
    doc_md=__doc__,
) as dag:
    # conf keys, recipe, quality profile, source, budgets, connection, candidate list: fails here in seconds, by name
    check_config = CheckRunConfigOperator(task_id="check_config")
    discover = DiscoverImagesOperator(
        task_id="discover",
        **from_params("source", "workspace", "recipe"),
        only_changed=False,  # a canary measures the source as it is, published or not
    )
    rights_check = RightsCheckOperator(
        task_id="rights_check",
        chunk_manifest_uris=discover.output,
        **from_params("workspace", "recipe", "rights_policy", "rights_sidecar"),
    )
    sample = CanarySampleOperator(
        task_id="sample",
        chunk_manifest_uris=rights_check.output,
        **from_params("workspace", "candidates", "sample_size", "seed"),
    )
    cost_check = CanaryCostCheckOperator(
        task_id="cost_check",
        chunk_manifest_uris=sample.output,
        **from_params("recipe", "workspace", "candidates", "backend_conn_id", "budget_run_usd", "budget_day_usd",
                      "budget_month_usd", "budget_policy"),
        retries=0,  # a decision does not change on retry
    )
    # one mapped edit per candidate: the candidate's settings come from its own cost decision
    edit = ImageEditOperator.partial(
        task_id="edit",
        **from_params("recipe", "workspace", "backend_conn_id"),
        max_failure_rate=1.0,  # a candidate's failures are what the canary measures
    ).expand(chunk_manifest_uri=cost_check.output)
    quality_gate = QualityGateOperator.partial(
        task_id="quality_gate",
        workspace="{{ params.workspace }}",
        profile="{{ params.quality_profile }}",
        min_pass_rate=0,  # a low pass rate is a figure here, not a failure
        quarantine=False,  # measured, never published: nothing for a reviewer
        data_docs=False,
        retries=0,
        trigger_rule="all_done",
    ).expand(edit_manifest_uri=edit.output)
    decide = CanaryDecideOperator(
        task_id="decide",
        **from_params("workspace", "recipe", "candidates", "target_pass_rate"),
        trigger_rule="all_done",  # a candidate whose edit task failed is a row of failures, not a missing row
    )
    quality_gate >> decide
    check_config.as_setup() >> discover
