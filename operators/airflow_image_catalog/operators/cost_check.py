"""CostCheckOperator: estimate a run before any money is spent and act on its budgets."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.links.run_page import CostReportLink
from airflow_image_catalog.pipeline.costing.decision import decision_uri
from airflow_image_catalog.workspace.runs import run_root_for

BUDGET_VARIABLES = {"run": "catalog_budget_run_usd", "day": "catalog_budget_day_usd",
                    "month": "catalog_budget_month_usd"}


def _amount(value: Any) -> float | None:
    """A budget from a param or a rendered template; empty / ``None`` = no limit."""
    if value is None or str(value).strip() in ("", "None", "null"):
        return None
    amount = float(value)
    if amount < 0:
        raise ValueError(f"a budget cannot be negative: {value!r}")
    return amount


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
    """

    lineage_function = "cost_check_lineage"
    operator_extra_links = (CostReportLink(),)
    template_fields: Sequence[str] = (
        "chunk_manifest_uris", "recipe", "workspace", "backend_conn_id", "budget_run_usd", "budget_day_usd",
        "budget_month_usd", "policy", "priority_file", "compare_with", "prices",
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

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def _budgets(self):
        from airflow.sdk import Variable

        from airflow_image_catalog.pipeline.costing.decision import Budgets

        values = {}
        for name, variable in BUDGET_VARIABLES.items():
            value = _amount(getattr(self, f"budget_{name}_usd"))
            values[name] = value if value is not None else _amount(Variable.get(variable, default=None))
        return Budgets(**values)

    def execute(self, context) -> list[str]:
        from datetime import UTC, datetime

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airflow_image_catalog.pipeline.costing.decision import decide, price_images
        from airflow_image_catalog.pipeline.costing.ledger import Ledger
        from airflow_image_catalog.pipeline.costing.pricing import load_prices
        from airflow_image_catalog.recipes import load_recipe
        from airflow_image_catalog.storage import read_json, write_json
        from airflow_image_catalog.workspace.manifest import ChunkManifest

        run_root, _ = run_root_for(self.workspace, context)
        uris = list(self.chunk_manifest_uris or [])
        chunks = [ChunkManifest.from_dict(read_json(uri)) for uri in uris]
        recipe = load_recipe(self.recipe)
        prices = load_prices(self.prices or None)
        config = self.hook.backend_config()
        backend = self.hook.get_backend()
        items = self._items(chunks, recipe, backend, run_root)
        settings = {k: v for k, v in config.extras.items() if k in ("size", "quality", "input_fidelity", "n")}
        model = backend.model if config.backend != "local" else None

        def reprice(overrides: dict[str, Any]):
            changed = dict(overrides)
            name = str(changed.pop("backend", config.backend))
            return price_images(items, recipe, name, changed.pop("model", model), {**settings, **changed},
                                prices=prices)

        now = datetime.now(UTC)
        ledger = Ledger(self.workspace)
        decision = decide(reprice({}), policy=str(self.policy), budgets=self._budgets(),
                          spent_day=ledger.spent(day=now.strftime("%Y-%m-%d")),
                          spent_month=ledger.spent(month=now.strftime("%Y-%m")), reprice=reprice,
                          backend=config.backend, settings=settings)
        if self.compare_with:
            other, _, other_model = str(self.compare_with).partition(":")
            priced = price_images(items, recipe, other, other_model or None, {}, prices=prices)
            decision.variants[str(self.compare_with)] = {
                "usd": round(sum(c.usd for c in priced if not c.cache_hit), 6),
                "low_usd": round(sum(c.low_usd for c in priced if not c.cache_hit), 6),
                "high_usd": round(sum(c.high_usd for c in priced if not c.cache_hit), 6)}
        write_json(decision_uri(run_root), decision.to_dict())
        context["ti"].xcom_push(key="cost_decision", value={
            k: getattr(decision, k) for k in ("action", "policy", "message", "estimate_usd", "low_usd", "high_usd",
                                              "images", "cache_hits", "available_usd", "limited_by", "overrides",
                                              "variants")} | {"skipped_budget": len(decision.skipped_budget)})
        self.log.info("cost check (%s, policy %s): %s", config.backend, decision.policy, decision.message)
        for name, variant in decision.variants.items():
            self.log.info("the same run on %s: $%.2f (band $%.2f-$%.2f)", name, variant["usd"], variant["low_usd"],
                          variant["high_usd"])
        if decision.action == "fail":
            raise AirflowFailException(f"cost check: {decision.message}")
        if decision.action == "skip":
            raise AirflowSkipException(f"cost check: {decision.message}")
        if decision.action == "cap":
            return self._capped(chunks, set(decision.kept or []), run_root)
        return uris

    def _items(self, chunks, recipe, backend, run_root: str) -> list[dict[str, Any]]:
        """Each image's size, priority and whether the result cache already holds its edit."""
        from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
        from airflow_image_catalog.storage import StorageError, read_json

        priorities = read_json(self.priority_file) if self.priority_file else {}
        items = []
        for chunk in chunks:
            run = ChunkRun(chunk, recipe, backend, run_root, workspace=self.workspace)
            for item in chunk.items:
                try:
                    hit = run.cache.get_meta(run.key_for(item)) is not None
                except (StorageError, ValueError):  # a missing mask fails at edit time, free
                    hit = False
                items.append({"image_id": item.image_id, "width": item.width, "height": item.height,
                              "cache_hit": hit, "priority": float(priorities.get(item.image_id, 0))})
        return items

    def _capped(self, chunks, kept: set[str], run_root: str) -> list[str]:
        from dataclasses import replace

        from airflow_image_catalog.storage import join_uri, write_json

        uris = []
        for chunk in chunks:
            items = [item for item in chunk.items if item.image_id in kept]
            if items:
                uri = join_uri(run_root, "chunks", "capped", f"chunk-{chunk.chunk_index:05d}.json")
                uris.append(write_json(uri, replace(chunk, items=items).to_dict()))
        return uris
