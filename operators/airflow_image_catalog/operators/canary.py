"""The canary's own tasks: sample, cost-check the candidates, decide. The edit and the gate between
them are the catalog's ``ImageEditOperator`` and ``QualityGateOperator``, mapped over one chunk per
candidate (see ``dags/catalog_canary.py`` and :mod:`airflow_image_catalog.pipeline.routing.canary`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_image_catalog.hooks.image_edit import ImageEditHook


def _run_key(context) -> str:
    from airflow_image_catalog.workspace.manifest import safe_run_key

    return safe_run_key(str(context["run_id"]))


class CanarySampleOperator(BaseOperator):
    """Draw a stratified sample of ``sample_size`` images (free features: size, backdrop, text, fill)
    from the chunk manifests and write one chunk manifest per candidate; returns their URIs.

    :param chunk_manifest_uris: the rights check's output (the images that may be edited).
    :param candidates: a shipped candidate list name or a candidate file (weakest first).
    :param sample_size: images in the sample (every candidate edits all of them).
    :param seed: the sample's seed; empty: the run id (each run draws a new sample).
    """

    template_fields: Sequence[str] = ("chunk_manifest_uris", "workspace", "candidates", "sample_size", "seed")

    def __init__(self, *, chunk_manifest_uris: Any, workspace: str, candidates: str, sample_size: int | str = 40,
                 seed: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uris = chunk_manifest_uris
        self.workspace = workspace
        self.candidates = candidates
        self.sample_size = sample_size
        self.seed = seed

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.pipeline.routing.canary import CanaryError, sample_canary
        from airflow_image_catalog.pipeline.routing.candidates import load_candidates

        try:
            size = int(self.sample_size)
        except (TypeError, ValueError):
            raise AirflowFailException(f"sample_size: must be a whole number, got {self.sample_size!r}") from None
        candidates = load_candidates(str(self.candidates))
        try:
            uris = sample_canary(list(self.chunk_manifest_uris or []), workspace=self.workspace,
                                 run_key=_run_key(context), candidates=candidates, size=size,
                                 seed=str(self.seed or context["run_id"]))
        except CanaryError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("canary sample: %d candidates (%s), one chunk each", len(uris), ", ".join(candidates.names))
        return uris


class CanaryCostCheckOperator(BaseOperator):
    """The cost check of every candidate's chunk, with the candidate's settings over the connection,
    against the budgets (less the candidates before it); fails or skips before anything is paid.

    :param budget_policy: ``fail`` or ``skip`` (a downgrade or a cap would measure something else).
    Budgets as :class:`~airflow_image_catalog.operators.cost_check.CostCheckOperator` takes them
    (argument, else the ``catalog_budget_*_usd`` Variables).
    """

    template_fields: Sequence[str] = ("chunk_manifest_uris", "recipe", "workspace", "backend_conn_id", "candidates",
                                      "budget_run_usd", "budget_day_usd", "budget_month_usd", "budget_policy", "prices")

    def __init__(self, *, chunk_manifest_uris: Any, recipe: str, workspace: str, candidates: str,
                 backend_conn_id: str = ImageEditHook.default_conn_name, budget_run_usd: Any = None,
                 budget_day_usd: Any = None, budget_month_usd: Any = None, budget_policy: str = "fail",
                 prices: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uris = chunk_manifest_uris
        self.recipe = recipe
        self.workspace = workspace
        self.candidates = candidates
        self.backend_conn_id = backend_conn_id
        self.budget_run_usd = budget_run_usd
        self.budget_day_usd = budget_day_usd
        self.budget_month_usd = budget_month_usd
        self.budget_policy = budget_policy
        self.prices = prices

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.backends import build_backend
        from airflow_image_catalog.hooks.image_edit import with_overrides
        from airflow_image_catalog.pipeline.costing.check import resolve_budgets
        from airflow_image_catalog.pipeline.routing.canary import CanaryError, check_canary_cost
        from airflow_image_catalog.pipeline.routing.candidates import load_candidates
        from airflow_image_catalog.recipes import load_recipe

        config = self.hook.backend_config()

        def resolve(overrides: dict[str, Any]):
            applied = with_overrides(config, overrides)
            return applied.backend, applied.extras, build_backend(applied)

        budgets = resolve_budgets({name: getattr(self, f"budget_{name}_usd") for name in ("run", "day", "month")},
                                  lambda name: Variable.get(name, default=None))
        try:
            cost = check_canary_cost(list(self.chunk_manifest_uris or []), candidates=load_candidates(self.candidates),
                                     recipe=load_recipe(self.recipe), resolve=resolve, workspace=self.workspace,
                                     policy=str(self.budget_policy), budgets=budgets, prices=self.prices or None)
        except CanaryError as exc:
            raise AirflowFailException(str(exc)) from None
        for name, figures in cost.candidates.items():
            self.log.info("candidate %s (%s %s): estimate $%.4f for %d images", name, figures["backend"],
                          figures["model"], figures["estimate_usd"], figures["images"])
        self.log.info("canary cost check: %s", cost.message)
        if cost.action == "fail":
            raise AirflowFailException(f"canary cost check: {cost.message}")
        if cost.action == "skip":
            raise AirflowSkipException(f"canary cost check: {cost.message}")
        return cost.chunk_uris


class CanaryDecideOperator(BaseOperator):
    """Figures per candidate from its edit and gate manifests, the choice (the cheapest per passing
    image whose Wilson 95 % lower bound meets ``target_pass_rate``), the versioned routing decision
    and the canary's table (logged, and in ``runs/<run>/canary/``). Returns the decision's URI."""

    template_fields: Sequence[str] = ("workspace", "recipe", "candidates", "target_pass_rate", "prices")

    def __init__(self, *, workspace: str, recipe: str, candidates: str, target_pass_rate: float | str = 0.9,
                 prices: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.recipe = recipe
        self.candidates = candidates
        self.target_pass_rate = target_pass_rate
        self.prices = prices

    def execute(self, context) -> str:
        from airflow_image_catalog.pipeline.routing.canary import CanaryError, decide_canary, table_markdown
        from airflow_image_catalog.pipeline.routing.candidates import load_candidates
        from airflow_image_catalog.recipes import load_recipe

        run_key = _run_key(context)
        try:
            decision, report = decide_canary(
                workspace=self.workspace, run_key=run_key, recipe=load_recipe(self.recipe),
                candidates=load_candidates(self.candidates), target=float(self.target_pass_rate),
                run={"dag_id": self.dag_id, "run_id": context["run_id"], "run_key": run_key},
                prices=self.prices or None)
        except CanaryError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("canary table:\n%s", table_markdown(decision, report["spent_usd"]))
        return report["decision_uri"]
