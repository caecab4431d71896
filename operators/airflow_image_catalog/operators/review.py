"""QuarantineReviewOperator: a person approves or rejects quarantined images in the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.pipeline.quality.review import (
    APPROVE_LISTED,
    OPTIONS,
    REJECT_ALL,
    apply_review,
    pending_reviews,
    review_body,
)
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import safe_run_key


def reviewer_answer(answer: dict[str, Any]) -> tuple[str, set[str], str, str]:
    """(option chosen, ids listed, reviewer, note) of a human-in-the-loop answer (the review form's fields)."""
    params = answer["params_input"] or {}
    responded_by = answer["responded_by_user"] or {}
    return (answer["chosen_options"][0],
            {i.strip() for i in str(params.get("approve_ids", "")).split(",") if i.strip()},
            str(responded_by.get("name") or responded_by.get("id") or "unknown"), str(params.get("note", "")))


class ReviewQueueOperator(ReportsLineage, HITLOperator):
    """Ask a reviewer (Airflow's human-in-the-loop "Required actions") about what waits in a queue.

    Skips when nothing waits. The answer applies to exactly the records the reviewer was shown
    (a snapshot written when asking), not to later arrivals. Without an answer within
    ``response_timeout`` the default ``Reject all`` applies. Subclasses name the queue
    (:meth:`waiting`, :meth:`describe`) and apply the answer in ``execute_complete``.

    :param workspace: URI prefix where run state (and the queue) lives.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "workspace")
    #: what the log and the skip say waits (e.g. "quarantined images wait for review")
    waiting_for = "images wait"

    def __init__(self, *, workspace: str, note: str, **kwargs: Any) -> None:
        kwargs.setdefault("defaults", REJECT_ALL)
        form = {
            "approve_ids": Param("", type="string", description=f"comma-separated ids for '{APPROVE_LISTED}'"),
            "note": Param("", type="string", description=note),
        }
        super().__init__(options=OPTIONS, params=form, **kwargs)
        self.workspace = workspace

    def waiting(self) -> list[dict[str, Any]]:
        """The queue's open records (each with its ``record_uri``)."""
        raise NotImplementedError

    def describe(self, pending: list[dict[str, Any]]) -> str:
        """The markdown body the reviewer reads."""
        raise NotImplementedError

    def _snapshot_uri(self, context) -> str:
        return WorkspaceLayout(self.workspace).review_snapshot(context["run_id"], self.task_id)

    def execute(self, context):
        pending = self.waiting()
        if not pending:
            raise AirflowSkipException(f"no {self.waiting_for}")
        write_json(self._snapshot_uri(context), [record["record_uri"] for record in pending])
        self.body = self.describe(pending)
        self.log.info("%d %s", len(pending), self.waiting_for)
        return super().execute(context)

    def shown(self, context) -> list[dict[str, Any]]:
        """The open records the reviewer was shown."""
        shown = set(read_json(self._snapshot_uri(context)))
        return [record for record in self.waiting() if record["record_uri"] in shown]


class QuarantineReviewOperator(ReviewQueueOperator):
    """Ask a reviewer about quarantined images: approved images are published; every decision is recorded
    in the image's quarantine record and its audit trail; nothing is published unseen.

    :param workspace: URI prefix where run state (and ``quarantine/``) lives.
    :param published: URI prefix of the published catalog images.
    """

    lineage_function = "review_lineage"
    template_fields: Sequence[str] = (*ReviewQueueOperator.template_fields, "published")
    waiting_for = "quarantined images wait for review"

    def __init__(self, *, workspace: str, published: str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Review quarantined catalog images")
        super().__init__(workspace=workspace, note="why (kept in the audit record)", **kwargs)
        self.published = published

    def waiting(self) -> list[dict[str, Any]]:
        return pending_reviews(self.workspace)

    def describe(self, pending: list[dict[str, Any]]) -> str:
        return review_body(pending)

    def _audit(self, context, decided: list[dict[str, Any]]) -> None:
        """Each decision joins the image's audit trail (an ``approved`` / ``rejected`` record)."""
        from airflow_image_catalog.pipeline.publishing.audit import (  # duckdb
            find_records,
            review_records,
            write_audit,
        )

        originals = find_records(self.workspace, [(r["run_key"], r["image_id"]) for r in decided])
        rows = review_records(decided, originals, run={"dag_id": self.dag_id, "run_id": context["run_id"],
                                                       "task_id": self.task_id})
        write_audit(rows, self.workspace, run_key=safe_run_key(context["run_id"]))

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        answer = super().execute_complete(context, event)
        decision, approve_ids, reviewer, note = reviewer_answer(answer)
        result = apply_review(self.shown(context), decision=decision, approve_ids=approve_ids, reviewer=reviewer,
                              note=note, published_root=self.published, workspace=self.workspace)
        self.log.info("review by %s: %d approved and published, %d rejected",
                      result["reviewer"], result["approved"], result["rejected"])
        self._audit(context, result["decided"])
        return {k: v for k, v in result.items() if k not in ("published", "decided")}  # XCom stays small
