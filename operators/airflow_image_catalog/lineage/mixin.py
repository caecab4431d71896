"""The three OpenLineage hooks every operator of this package implements, in one place.

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_start`` /
``_on_complete`` / ``_on_failure``; each operator names the function of
:mod:`airflow_image_catalog.lineage.extract` that knows its datasets and facets. The import is lazy,
so DAG parsing never loads the OpenLineage client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ReportsLineage:
    """Mixin: delegate the OpenLineage hooks to ``airflow_image_catalog.lineage.extract.<lineage_function>``."""

    lineage_function: ClassVar[str]

    def _lineage(self, task_instance: Any = None):
        from airflow_image_catalog.lineage import extract

        return getattr(extract, self.lineage_function)(self, task_instance)

    def get_openlineage_facets_on_start(self):
        """Datasets known before running (from the rendered template fields)."""
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any):
        """The datasets plus the facets read from what the task wrote."""
        return self._lineage(task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any):
        """Whatever the failed task left (manifests are written before a task fails)."""
        return self._lineage(task_instance)
