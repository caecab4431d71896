"""PublishOperator: publish a run's edited images and write its report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.runs import run_root_for


class PublishOperator(BaseOperator):
    """Copy every successfully edited image to ``published`` and write the run report.

    :param edit_manifest_uris: the edit manifests of the run (the mapped edit task's output).
    :param published: URI prefix of the published catalog images.
    :param workspace: URI prefix where run state lives; the report goes to ``runs/<run>/report.{json,html}``.
    """

    template_fields: Sequence[str] = ("edit_manifest_uris", "published", "workspace")

    def __init__(self, *, edit_manifest_uris: Any, published: str, workspace: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edit_manifest_uris = edit_manifest_uris
        self.published = published
        self.workspace = workspace

    def execute(self, context) -> str:
        from operators.manifest import EditManifest
        from operators.publishing import publish_run
        from operators.storage import read_json

        run_root, _ = run_root_for(self.workspace, context)
        manifests = [EditManifest.from_dict(read_json(uri)) for uri in (self.edit_manifest_uris or [])]
        report = publish_run(
            manifests,
            published_root=self.published,
            workspace=self.workspace,
            run_root=run_root,
            run={"dag_id": self.dag_id, "run_id": context["run_id"], "task_id": self.task_id},
        )
        counts = report["counts"]
        self.log.info(
            "published %d of %d images (%d failed) to %s; report %s",
            counts["published"], counts["found"], counts["failed"], self.published, report["report_html"],
        )
        for failure in report["failures"]:
            self.log.warning("not published: %s: %s", failure["image_id"], failure["error"])
        return report["report_json"]
