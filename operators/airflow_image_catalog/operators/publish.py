"""PublishOperator: publish a run's edited images and write its report; RunOutcomeOperator: fail the run
(and alert) when a part of it failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.pipeline.publishing.outcome import (
    RunOutcome,
    check_policy,
    chunk_outcomes,
    task_failures,
)
from airflow_image_catalog.pipeline.publishing.publish import outcome_results, publish_run
from airflow_image_catalog.pipeline.publishing.report import found_phrase
from airflow_image_catalog.storage import normalize_uri, read_json_if_exists
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class RunFailed(AirflowFailException):
    """A chunk or a task of the run failed: what passed is published (``partial``), the run fails."""


class RunOutcomeOperator(BaseOperator):
    """The run's last task: fail (so the run fails and the failure alert fires) when the report
    says the run failed, or when publish wrote no report this try.

    Apart from publish so that publish succeeds for what it published (its asset event reaches
    downstream DAGs) while the run still ends ``failed``. The verdict is the report's, decided by
    :mod:`~airflow_image_catalog.pipeline.publishing.outcome`.

    :param publish_task_id: the task whose output is the report's URI.
    """

    ui_color = "#fbe8e8"

    def __init__(self, *, publish_task_id: str = "publish", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)  # a verdict does not change on retry
        super().__init__(**kwargs)
        self.publish_task_id = publish_task_id

    def execute(self, context) -> None:
        from airflow_image_catalog.storage import read_json

        uri = context["ti"].xcom_pull(task_ids=self.publish_task_id)
        if not uri:
            raise RunFailed(f"{self.publish_task_id} wrote no report this try; see its log")
        report = read_json(uri)
        outcome = report.get("outcome") or {}
        if outcome.get("status") == "failed":
            counts = report["counts"]
            raise RunFailed(f"the run failed ({outcome.get('policy')} publishing: {counts['published']} images "
                            f"published, {outcome.get('held', 0)} held): " + "; ".join(outcome.get("reasons") or [])
                            + f"; report {report.get('report_html')}")
        self.log.info("the run succeeded: %d images published; report %s", report["counts"]["published"],
                      report.get("report_html"))


class PublishOperator(ReportsLineage, BaseOperator):
    """Copy every edited image that passed the gate to ``published`` and write the run report, with
    each chunk's status and reason (failed runs too; :class:`RunOutcomeOperator` then fails the run).

    Runs once every upstream task is done (``trigger_rule="all_done"``): it reads which chunks the
    cost check sent to editing, the run's task states, and each chunk's edit and gate manifests;
    :mod:`~airflow_image_catalog.pipeline.publishing.outcome` decides what publishes under
    ``policy`` (``partial``: every image that passed; ``strict``: nothing when anything failed).

    :param published: URI prefix of the published catalog images.
    :param workspace: URI prefix where run state lives; the report goes to ``runs/<run>/report.{json,html}``.
    :param policy: ``partial`` (default) or ``strict``; templated (``{{ params.publish_policy }}``).
    :param chunks_task_id: the task whose output lists the chunk manifests that were edited.
    :param edit_task_id: the mapped edit task (its map index i edits the i-th chunk).
    :param gate_task_id: the mapped quality gate.
    """

    lineage_function = "publish_lineage"
    template_fields: Sequence[str] = ("published", "workspace", "policy")

    def __init__(self, *, published: str, workspace: str, policy: str = "partial",
                 chunks_task_id: str = "cost_check", edit_task_id: str = "edit",
                 gate_task_id: str = "quality_gate", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.published = published
        self.workspace = workspace
        self.policy = policy
        self.chunks_task_id = chunks_task_id
        self.edit_task_id = edit_task_id
        self.gate_task_id = gate_task_id

    def execute(self, context) -> str:
        ti, run_id = context["ti"], context["run_id"]
        run_root = WorkspaceLayout(self.workspace).run_for(context)
        states = ti.get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
        chunk_uris = ti.xcom_pull(task_ids=self.chunks_task_id) or []  # none: the cost check failed or skipped
        outcome = RunOutcome(
            check_policy(str(self.policy)),
            chunk_outcomes(list(chunk_uris), run_root, states, edit_task_id=self.edit_task_id),
            task_failures(states, mapped=(self.edit_task_id, self.gate_task_id), own_task_id=self.task_id),
        )
        report = publish_run(
            outcome_results(outcome),
            published_root=self.published,
            workspace=self.workspace,
            run_root=run_root.root,
            run={"dag_id": self.dag_id, "run_id": run_id, "task_id": self.task_id},
            outcome=outcome,
            discovery=read_json_if_exists(run_root.discovery),
        )
        counts = report["counts"]
        self.log.info(
            "published %d images of %s (%d failed, %d quarantined, %d held) to %s; report %s",
            counts["published"], found_phrase(counts), counts["failed"], counts["quarantined"], len(report["held"]),
            self.published, report["report_html"],
        )
        for failure in report["failures"]:
            self.log.warning("not published: %s: %s", failure["image_id"], failure["error"])
        for reason in outcome.reasons:
            self.log.warning("run failed: %s", reason)
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
