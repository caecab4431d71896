"""The params the catalog DAGs share, declared once: a name means the same thing, with the same default,
type and bounds, in every DAG that takes it (``check_config`` and the operators read them by name).

Light at parse time: only ``airflow.sdk.Param`` and the default locations.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow.sdk import Param

from airflow_image_catalog.config.locations import catalog_location


def _budget(period: str, what: str) -> Callable[[], Param]:
    return lambda: Param(None, type=["null", "number"], minimum=0,
                         description=f"{what}; empty = Variable catalog_budget_{period}_usd")


#: each shared param's declaration; a new Param per DAG (a DAG owns and may resolve its params)
SHARED: dict[str, Callable[[], Param]] = {
    "source": lambda: Param(catalog_location("samples"), type="string", description="source images (path or URI)"),
    "workspace": lambda: Param(catalog_location("work"), type="string",
                               description="run state: manifests, outputs, reports, the ledger, routing decisions"),
    "published": lambda: Param(catalog_location("published"), type="string",
                               description="where passing images are published"),
    "recipe": lambda: Param("marketplace_white_square", type="string",
                            description="shipped recipe name or recipe file"),
    "backend_conn_id": lambda: Param("image_edit_default", type="string", description="image_edit connection"),
    "rights_policy": lambda: Param("", type="string", description="rights policy: default, strict or a file; "
                                   "empty = the recipe's, else default"),
    "rights_sidecar": lambda: Param("", type="string", description="CSV / JSON of image id -> licence, releases, "
                                    "expiry, allowed uses (the catalog's PIM); empty = none"),
    "quality_profile": lambda: Param("", type="string",
                                     description="quality profile name or file; empty = the recipe's"),
    "budget_run_usd": _budget("run", "USD this run may spend"),
    "budget_day_usd": _budget("day", "USD per UTC day, ledger included"),
    "budget_month_usd": _budget("month", "USD per UTC month, ledger included"),
}
BUDGETS = ("budget_run_usd", "budget_day_usd", "budget_month_usd")


def shared_params(*names: str) -> dict[str, Param]:
    """The shared params ``names``, in that order (a DAG's own params go between or after them)."""
    unknown = [name for name in names if name not in SHARED]
    if unknown:
        raise KeyError(f"not a shared catalog param: {', '.join(unknown)} (shared: {', '.join(SHARED)})")
    return {name: SHARED[name]() for name in names}


def from_params(*names: str) -> dict[str, str]:
    """Operator arguments templated from the DAG params of the same names (``{{ params.<name> }}``)."""
    return {name: f"{{{{ params.{name} }}}}" for name in names}
