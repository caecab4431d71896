"""CostCheckOperator: estimate a run before any money is spent and act on its budgets."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_image_catalog.config.params import as_bool
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.links.run_page import CostReportLink
from airflow_image_catalog.pipeline.costing.check import check_run_cost, decision_summary, resolve_budgets
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class CostCheckOperator(ReportsLineage, BaseOperator):
    """Price the run's images (cache hits excluded), compare with budgets, and act by ``policy``.

    Placed between discover and edit: takes the chunk manifests discover wrote and returns
    the chunk manifests the edit task is mapped over (the same ones, or fewer images for
    ``cap``). The decision and its numbers are logged, pushed to XCom (``cost_decision``)
    and written to ``runs/<run>/cost/decision.json``, where the edit task (downgrade
    overrides, the mid-run guard) and the run report read them.

    Budgets come from the arguments (DAG params) or, when those are empty, the Airflow
    Variables ``catalog_budget_run_usd`` / ``_day_usd`` / ``_month_usd``; the day and month
    budgets are reduced by what the ledger says was spent (UTC day and month).

    :param chunk_manifest_uris: the discover task's output.
    :param recipe: shipped recipe name or recipe file.
    :param workspace: run state root (the ledger and the result cache live there).
    :param backend_conn_id: the ``image_edit`` connection the edit task will use.
    :param budget_run_usd: limit for this run (None: a Variable, else no limit).
    :param budget_day_usd: limit for the UTC day, this run included.
    :param budget_month_usd: limit for the UTC month, this run included.
    :param policy: on a breach: ``fail`` (and alert), ``skip`` the run, ``downgrade`` (Batch
        route, lower quality, smaller size, cheaper model, until under budget) or ``cap``
        (the highest-priority images that fit).
    :param priority_file: JSON ``{"image_id": priority}`` for ``cap`` (higher first; others 0).
    :param compare_with: also price the run on ``backend:model`` (e.g. ``openai:gpt-image-2``)
        for the report.
    :param prices: a price file overriding the shipped table (path or URI; empty: shipped).
    :param routing: route the run (templated: renders to ``True`` / ``False``): each image to the cheapest
        candidate expected to pass (``pipeline/routing``), priced with an escalation reserve; the plan goes to
        ``runs/<run>/routing/plan.json``. Off: every image on the connection, as before.
    :param routing_candidates: the candidate list (name or file); empty = the recipe's latest canary decision's.
    :param routing_target: the pass rate an image's route must be expected to reach; empty = the canary's.
    :param routing_explore_share: the share of images sent to another candidate to keep estimates current.
    """

    lineage_function = "cost_check_lineage"
    operator_extra_links = (CostReportLink(),)
    template_fields: Sequence[str] = (
        "chunk_manifest_uris", "recipe", "workspace", "backend_conn_id", "budget_run_usd", "budget_day_usd",
        "budget_month_usd", "policy", "priority_file", "compare_with", "prices", "routing", "routing_candidates",
        "routing_target", "routing_explore_share",
    )

    def __init__(
        self,
        *,
        chunk_manifest_uris: Any,
        recipe: str,
        workspace: str,
        backend_conn_id: str = ImageEditHook.default_conn_name,
        budget_run_usd: float | str | None = None,
        budget_day_usd: float | str | None = None,
        budget_month_usd: float | str | None = None,
        policy: str = "fail",
        priority_file: str | None = None,
        compare_with: str | None = None,
        prices: str | None = None,
        routing: bool | str = False,
        routing_candidates: str | None = None,
        routing_target: float | str | None = None,
        routing_explore_share: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uris = chunk_manifest_uris
        self.recipe = recipe
        self.workspace = workspace
        self.backend_conn_id = backend_conn_id
        self.budget_run_usd = budget_run_usd
        self.budget_day_usd = budget_day_usd
        self.budget_month_usd = budget_month_usd
        self.policy = policy
        self.priority_file = priority_file
        self.compare_with = compare_with
        self.prices = prices
        self.routing = routing
        self.routing_candidates = routing_candidates
        self.routing_target = routing_target
        self.routing_explore_share = routing_explore_share

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def execute(self, context) -> list[str]:
        run_root = WorkspaceLayout(self.workspace).run_for(context).root
        config = self.hook.backend_config()
        recipe = load_recipe(self.recipe)
        routing = None
        if as_bool(self.routing, "routing"):
            from airflow_image_catalog.pipeline.routing.plan import routing_request

            routing = routing_request(self.workspace, recipe.name, candidates=self.routing_candidates,
                                      target=self.routing_target, explore_share=self.routing_explore_share)
        budgets = resolve_budgets({name: getattr(self, f"budget_{name}_usd") for name in ("run", "day", "month")},
                                  lambda name: Variable.get(name, default=None))
        check = check_run_cost(
            list(self.chunk_manifest_uris or []),
            recipe=recipe,
            backend=self.hook.get_backend(),
            backend_name=config.backend,
            extras=config.extras,
            workspace=self.workspace,
            run_root=run_root,
            policy=str(self.policy),
            budgets=budgets,
            prices=self.prices,
            priority_file=self.priority_file,
            compare_with=self.compare_with,
            routing=routing,
            backend_for=self.hook.get_backend,
        )
        decision = check.decision
        context["ti"].xcom_push(key="cost_decision", value=decision_summary(decision))
        self.log.info("cost check (%s, policy %s): %s", config.backend, decision.policy, decision.message)
        if decision.routing:
            self.log.info("routed: %s images per candidate, %d explored; expected $%.4f per passing image; plan %s",
                          decision.routing["counts"], decision.routing["explored"],
                          decision.routing["expected"]["usd_per_pass"] or 0.0, decision.routing["plan"])
        for name, variant in decision.variants.items():
            self.log.info("the same run on %s: $%.2f (band $%.2f-$%.2f)", name, variant["usd"], variant["low_usd"],
                          variant["high_usd"])
        if decision.action == "fail":
            raise AirflowFailException(f"cost check: {decision.message}")
        if decision.action == "skip":
            raise AirflowSkipException(f"cost check: {decision.message}")
        return check.chunk_uris
