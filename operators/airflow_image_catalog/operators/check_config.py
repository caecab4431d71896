"""CheckRunConfigOperator: a run's configuration checked first, so a mistake fails in seconds, by name."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Variable
from airflow.sdk.exceptions import AirflowFailException

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.hooks.image_edit import ImageEditHook


class CheckRunConfigOperator(BaseOperator):
    """Fail the run at once, without retries, when its conf or params cannot work.

    Checks what :func:`~airflow_image_catalog.config.run_config.check_run_config` checks (unknown conf
    keys, the recipe, the quality profile, the source location, the budgets and their Variables) and
    that the ``image_edit`` connection named by ``backend_conn_id`` is defined (only the default
    may be missing: it means the local engine), builds its backend and checks the recipe's prompts
    against the provider's limit. Every problem goes into one
    :class:`AirflowFailException`, one line per field, so the run's failure says what to fix.
    """

    ui_color = "#e8f1fb"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)  # a misspelt key does not fix itself
        super().__init__(**kwargs)

    def execute(self, context) -> None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from airflow_image_catalog.config.run_config import check_run_config

        params = dict(context["params"])
        conf = dict(getattr(context.get("dag_run"), "conf", None) or {})
        declared = set(self.dag.params) if self.has_dag() else None  # the run's params hold unknown conf keys too
        conn_id = params.get("backend_conn_id") or ImageEditHook.default_conn_name
        backend, problems = None, []
        try:  # building a backend sends nothing: its HTTP clients open on the first request
            backend = ImageEditHook(image_edit_conn_id=conn_id).get_backend()
        except AirflowNotFoundException:
            problems.append(f"backend_conn_id: no connection {conn_id!r} is defined (an image_edit connection)")
        except (CatalogError, ValueError) as exc:  # an unknown backend, an option of the wrong type, ...
            problems.append(f"backend_conn_id: {exc}")
        problems = check_run_config(conf, params, declared=declared, backend=backend,
                                    variable=lambda name: Variable.get(name, default=None)) + problems
        if problems:
            raise AirflowFailException("the run's configuration cannot work:\n" + "\n".join(
                f"  {problem}" for problem in problems))
        self.log.info("configuration checked: recipe %s, source %s", params.get("recipe"), params.get("source"))
