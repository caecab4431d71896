"""ConsentReviewOperator: a person gives or refuses consent for images the rights check held back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.operators.review import reviewer_answer
from airflow_image_catalog.pipeline.quality.review import APPROVE_ALL, APPROVE_LISTED, OPTIONS, REJECT_ALL
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class ConsentReviewOperator(ReportsLineage, HITLOperator):
    """Ask a reviewer (Airflow's human-in-the-loop "Required actions") for consent to edit waiting images.

    Skips when nothing waits. The body shows each image with what the rights check found (faces,
    terms, release status) and why it waits. An approval lets the next ``catalog_refresh`` edit the
    image; a rejection refuses it for good for those bytes. Without an answer within
    ``response_timeout`` the default ``Reject all`` applies: nothing is edited without consent.

    :param workspace: URI prefix where run state (and ``consent/``) lives.
    """

    lineage_function = "consent_lineage"
    template_fields: Sequence[str] = (*HITLOperator.template_fields, "workspace")

    def __init__(self, *, workspace: str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Consent to edit catalog images")
        kwargs.setdefault("defaults", REJECT_ALL)
        form = {
            "approve_ids": Param("", type="string", description=f"comma-separated ids for '{APPROVE_LISTED}'"),
            "note": Param("", type="string", description="the release or reason (kept in the audit record)"),
        }
        super().__init__(options=OPTIONS, params=form, **kwargs)
        self.workspace = workspace

    def _snapshot_uri(self, context) -> str:
        return WorkspaceLayout(self.workspace).review_snapshot(context["run_id"], self.task_id)

    def execute(self, context):
        from airflow_image_catalog.pipeline.rights.consent import consent_body, pending_consents

        pending = pending_consents(self.workspace)
        if not pending:
            raise AirflowSkipException("no image waits for consent")
        # the answer applies to exactly what the reviewer was shown, not to later arrivals
        write_json(self._snapshot_uri(context), [record["record_uri"] for record in pending])
        self.body = consent_body(pending)
        self.log.info("%d images wait for consent", len(pending))
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_image_catalog.pipeline.rights.check import write_rights_audit
        from airflow_image_catalog.pipeline.rights.consent import apply_consent, pending_consents

        answer = super().execute_complete(context, event)
        option, listed, reviewer, note = reviewer_answer(answer)
        shown = set(read_json(self._snapshot_uri(context)))
        run = {"dag_id": self.dag_id, "run_id": context["run_id"], "task_id": self.task_id}
        result = apply_consent(
            [record for record in pending_consents(self.workspace) if record["record_uri"] in shown],
            approve_ids=None if option == APPROVE_ALL else set() if option == REJECT_ALL else listed,
            reviewer=reviewer, note=note, workspace=self.workspace, run=run)
        write_rights_audit(result["decided"], self.workspace, run=run, consent=True)
        self.log.info("consent by %s: %d approved (edited by the next catalog_refresh), %d refused",
                      reviewer, result["approved"], result["rejected"])
        return {k: v for k, v in result.items() if k != "decided"}  # XCom stays small
