"""Operator extra links: from an edit, gate or cost task instance to its part of the run's report.

The link is worked out when the task finishes (Airflow 3 stores it as an XCom), from the run id
alone: the UI plugin's run page (``/image-catalog/runs/<run key>``) has one section per stage,
``#cost``, ``#edit`` and ``#quality``. Also exposed as the ``image_catalog`` plugin's macro
``{{ macros.image_catalog.run_page_url(run_id) }}`` for notifications and docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink, conf

from airflow_image_catalog.workspace.manifest import safe_run_key

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: where the plugin's FastAPI app is mounted on the api-server
PLUGIN_PREFIX = "/image-catalog"


def run_page_url(run_id: str, anchor: str = "") -> str:
    """The plugin page of a catalog run (absolute when ``[api] base_url`` is set, else site-relative).

    :param run_id: the Airflow run id (its storage-safe key names the page).
    :param anchor: a section of the page: ``cost``, ``edit`` or ``quality``.
    """
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{PLUGIN_PREFIX}/runs/{quote(safe_run_key(run_id))}" + (f"#{anchor}" if anchor else "")


class _RunReportLink(BaseOperatorLink):
    """A link to one section of the task's run page."""

    anchor: ClassVar[str] = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return run_page_url(ti_key.run_id, self.anchor)


class CostReportLink(_RunReportLink):
    """The cost check's decision, estimate vs actual, per model."""

    name = "Catalog report: cost"
    anchor = "cost"


class EditReportLink(_RunReportLink):
    """The run's edit counts, failures and their reasons."""

    name = "Catalog report: edit"
    anchor = "edit"


class QualityReportLink(_RunReportLink):
    """The gate's pass rate, failed expectations, quarantined images and GX Data Docs."""

    name = "Catalog report: quality"
    anchor = "quality"
