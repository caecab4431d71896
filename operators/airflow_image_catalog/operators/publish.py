"""PublishOperator: publish a run's edited images and write its report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.pipeline.publishing.publish import load_chunk_results, publish_run
from airflow_image_catalog.storage import normalize_uri
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class PublishOperator(ReportsLineage, BaseOperator):
    """Copy every edited image that passed the gate to ``published`` and write the run report.

    :param manifest_uris: the run's gate manifests (the mapped quality gate's output), or its edit
        manifests when no gate ran.
    :param published: URI prefix of the published catalog images.
    :param workspace: URI prefix where run state lives; the report goes to ``runs/<run>/report.{json,html}``.
    """

    lineage_function = "publish_lineage"
    template_fields: Sequence[str] = ("manifest_uris", "published", "workspace")

    def __init__(self, *, manifest_uris: Any, published: str, workspace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manifest_uris = manifest_uris
        self.published = published
        self.workspace = workspace

    def execute(self, context) -> str:
        run_root = WorkspaceLayout(self.workspace).run_for(context).root
        report = publish_run(
            load_chunk_results(list(self.manifest_uris or [])),
            published_root=self.published,
            workspace=self.workspace,
            run_root=run_root,
            run={"dag_id": self.dag_id, "run_id": context["run_id"], "task_id": self.task_id},
        )
        counts = report["counts"]
        self.log.info(
            "published %d of %d images (%d failed, %d quarantined) to %s; report %s",
            counts["published"], counts["found"], counts["failed"], counts["quarantined"], self.published,
            report["report_html"],
        )
        for failure in report["failures"]:
            self.log.warning("not published: %s: %s", failure["image_id"], failure["error"])
        self._announce(context, report)
        return report["report_json"]

    def _announce(self, context, report: dict) -> None:
        """An asset event on the published location (through the ``catalog-published`` alias, since
        the location is a runtime param), so downstream DAGs run when the catalog changed."""
        alias = next((o for o in self.outlets if isinstance(o, AssetAlias)), None)
        if alias is None or not report["counts"]["published"]:
            return
        context["outlet_events"][alias].add(
            Asset(normalize_uri(self.published).rstrip("/")),
            extra={"run_id": context["run_id"], "published": report["counts"]["published"],
                   "report": report["report_json"], "published_manifest": report.get("published_manifest")})
