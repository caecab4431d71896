"""EscalateOperator: edit a routed run's quarantined images once more, on the next stronger candidate."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.operators.image_edit import edit_facts


class EscalateOperator(BaseOperator):
    """After the quality gate: each image of a routed run that failed the gate is re-edited once on the
    next stronger candidate and gated again, within the run's budget (the mid-run guard), and its record
    keeps the chain (:mod:`~airflow_image_catalog.pipeline.routing.escalation`).

    One task for the whole run, after every edit and gate: chunk by chunk, so the guard sees everything the
    run spent and holds, and escalations never take the run past its budget. A run that is not routed has
    nothing to escalate: the task returns at once. Returns the merged gate manifests' URIs.

    :param chunks_task_id: the task whose output lists the chunk manifests sent to editing (read at runtime,
        as publish does: none when the cost check failed or skipped the run); each chunk whose edit wrote a
        manifest is escalated.
    :param workspace: URI prefix where run state lives.
    :param backend_conn_id: the ``image_edit`` connection the candidates' overrides apply to.
    :param profile: quality profile name or file; empty = the recipe's.
    :param min_pass_rate: a chunk's pass rate after escalation below this is reported as a gate failure.
    """

    template_fields: Sequence[str] = ("workspace", "backend_conn_id", "profile", "min_pass_rate")

    def __init__(self, *, workspace: str, chunks_task_id: str = "cost_check",
                 backend_conn_id: str = ImageEditHook.default_conn_name, profile: str = "",
                 min_pass_rate: float | str | None = None, ocr: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunks_task_id = chunks_task_id
        self.workspace = workspace
        self.backend_conn_id = backend_conn_id
        self.profile = profile
        self.min_pass_rate = min_pass_rate
        self.ocr = ocr

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.pipeline.routing.escalation import escalate_run

        threshold = float(self.min_pass_rate) if self.min_pass_rate not in (None, "", "None") else None
        chunk_uris = context["ti"].xcom_pull(task_ids=self.chunks_task_id) or []
        uris = escalate_run(list(chunk_uris), self.workspace, self.hook.get_backend,
                            profile=self.profile, min_pass_rate=threshold, ocr=self.ocr,
                            facts=edit_facts(self, context))
        self.log.info("%s", f"{len(uris)} chunks' manifests after escalation" if uris else
                      "not a routed run (or nothing was gated): nothing to escalate")
        return uris
