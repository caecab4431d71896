"""EscalateOperator: edit a routed chunk's quarantined images once more, on the next stronger candidate."""

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
    keeps the chain (:mod:`~airflow_image_catalog.pipeline.routing.escalation`). A run that is not routed
    has nothing to escalate: the task returns at once. Returns the chunk's merged gate manifest's URI
    (None when there is none).

    :param edit_manifest_uri: the chunk's edit manifest (map over the edit task's output).
    :param workspace: URI prefix where run state lives.
    :param backend_conn_id: the ``image_edit`` connection the candidates' overrides apply to.
    :param profile: quality profile name or file; empty = the recipe's.
    :param min_pass_rate: the chunk's pass rate after escalation below this is reported as a gate failure.
    """

    template_fields: Sequence[str] = ("edit_manifest_uri", "workspace", "backend_conn_id", "profile", "min_pass_rate")

    def __init__(self, *, edit_manifest_uri: str, workspace: str,
                 backend_conn_id: str = ImageEditHook.default_conn_name, profile: str = "",
                 min_pass_rate: float | str | None = None, ocr: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edit_manifest_uri = edit_manifest_uri
        self.workspace = workspace
        self.backend_conn_id = backend_conn_id
        self.profile = profile
        self.min_pass_rate = min_pass_rate
        self.ocr = ocr

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def execute(self, context) -> str | None:
        from airflow_image_catalog.pipeline.routing.escalation import escalate_chunk, load_escalation

        job = load_escalation(self.edit_manifest_uri, self.workspace, self.profile)
        if job is None:
            self.log.info("not a routed run (or no gate verdict for this chunk): nothing to escalate")
            return None
        facts = edit_facts(self, context)
        threshold = float(self.min_pass_rate) if self.min_pass_rate not in (None, "", "None") else None
        uri = escalate_chunk(job, self.hook.get_backend, min_pass_rate=threshold, ocr=self.ocr, facts=facts)
        self.log.info("chunk's manifests after escalation: %s", uri)
        return uri
