"""ConsentReviewOperator: a person gives or refuses consent for images the rights check held back."""

from __future__ import annotations

from typing import Any

from airflow_image_catalog.operators.review import ReviewQueueOperator, reviewer_answer
from airflow_image_catalog.pipeline.quality.review import APPROVE_ALL, REJECT_ALL


class ConsentReviewOperator(ReviewQueueOperator):
    """Ask a reviewer (Airflow's human-in-the-loop "Required actions") for consent to edit waiting images.

    The body shows each image with what the rights check found (faces, terms, release status) and
    why it waits. An approval lets the next ``catalog_refresh`` edit the image; a rejection refuses
    it for good for those bytes; no answer within ``response_timeout``: ``Reject all``, nothing is
    edited without consent. Every answer joins the image's audit trail.

    :param workspace: URI prefix where run state (and ``consent/``) lives.
    """

    lineage_function = "consent_lineage"
    waiting_for = "images wait for consent"

    def __init__(self, *, workspace: str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Consent to edit catalog images")
        super().__init__(workspace=workspace, note="the release or reason (kept in the audit record)", **kwargs)

    def waiting(self) -> list[dict[str, Any]]:
        from airflow_image_catalog.pipeline.rights.consent import pending_consents

        return pending_consents(self.workspace)

    def describe(self, pending: list[dict[str, Any]]) -> str:
        from airflow_image_catalog.pipeline.rights.consent import consent_body

        return consent_body(pending)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow_image_catalog.pipeline.rights.check import write_rights_audit
        from airflow_image_catalog.pipeline.rights.consent import apply_consent

        answer = super().execute_complete(context, event)
        option, listed, reviewer, note = reviewer_answer(answer)
        run = {"dag_id": self.dag_id, "run_id": context["run_id"], "task_id": self.task_id}
        result = apply_consent(
            self.shown(context), approve_ids=None if option == APPROVE_ALL else set() if option == REJECT_ALL
            else listed, reviewer=reviewer, note=note, workspace=self.workspace, run=run)
        write_rights_audit(result["decided"], self.workspace, run=run, consent=True)
        self.log.info("consent by %s: %d approved (edited by the next catalog_refresh), %d refused",
                      reviewer, result["approved"], result["rejected"])
        return {k: v for k, v in result.items() if k != "decided"}  # XCom stays small
