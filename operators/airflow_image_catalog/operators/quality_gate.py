"""QualityGateOperator: judge one chunk's edits with a Great Expectations suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.links.run_page import QualityReportLink
from airflow_image_catalog.pipeline.quality.profiles import load_profile
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.storage import read_json, write_json
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest, EditManifest


class QualityGateFailed(AirflowFailException):
    """The chunk's pass rate is below the threshold; retrying would not change the verdict."""


class QualityGateOperator(ReportsLineage, BaseOperator):
    """Compute per-image quality metrics for an edit manifest and validate them with GX.

    Passing images go on to publish; failing ones are quarantined (copied with their
    metrics and failed expectations to ``workspace/quarantine/<run>/``). Single
    failures only quarantine; the task fails when the share of passing images falls
    below ``min_pass_rate``. Returns the gate manifest's URI.

    :param edit_manifest_uri: the edit manifest of one chunk (map over the edit task's output).
    :param workspace: URI prefix where run state lives.
    :param profile: quality profile name or file; empty = the recipe's ``quality.profile``.
    :param min_pass_rate: fail the task below this share of passing images (0..1).
    :param ocr: compare text on the source and the edit with tesseract (skipped where absent).
    :param data_docs: build GX Data Docs into the run's report location.
    :param quarantine: copy failures to the review queue (``quarantine/<run>/``); False records the
        verdicts only (a canary's edits are measured, never published).
    """

    lineage_function = "quality_gate_lineage"
    operator_extra_links = (QualityReportLink(),)
    template_fields: Sequence[str] = ("edit_manifest_uri", "workspace", "profile", "min_pass_rate")

    def __init__(
        self,
        *,
        edit_manifest_uri: str,
        workspace: str,
        profile: str = "",
        min_pass_rate: float | str = 0.8,
        ocr: bool = True,
        data_docs: bool = True,
        quarantine: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.edit_manifest_uri = edit_manifest_uri
        self.workspace = workspace
        self.profile = profile
        self.min_pass_rate = min_pass_rate
        self.ocr = ocr
        self.data_docs = data_docs
        self.quarantine = quarantine

    def execute(self, context) -> str:
        from airflow_image_catalog.pipeline.quality.gate import gate_chunk  # numpy; GX inside

        manifest = EditManifest.from_dict(read_json(self.edit_manifest_uri))
        recipe = load_recipe(manifest.recipe.get("ref") or manifest.recipe["origin"])  # "ref": any worker
        profile = load_profile(self.profile or recipe.quality.profile)
        workspace = WorkspaceLayout(self.workspace)
        run = workspace.run(manifest.run_key)
        chunk = ChunkManifest.from_dict(read_json(run.chunk(manifest.chunk_index)))
        gate = gate_chunk(
            manifest,
            recipe,
            profile,
            source_root=chunk.source_root,
            quarantine_root=workspace.run_quarantine(manifest.run_key) if self.quarantine else None,
            docs_root=run.data_docs(manifest.chunk_index) if self.data_docs else None,
            ocr=self.ocr,
        )
        gate["edit_manifest_uri"] = self.edit_manifest_uri
        threshold = float(self.min_pass_rate)
        below = gate["pass_rate"] is not None and gate["pass_rate"] < threshold
        # the reason is written with the verdicts: the run's report says why the chunk failed
        gate["failure"] = (f"chunk {manifest.chunk_index}: pass rate {gate['pass_rate']:.0%} is below "
                           f"{threshold:.0%} ({gate['counts']['quarantined']} quarantined)" if below else None)
        uri = write_json(run.gate(manifest.chunk_index), gate)
        self.log.info(
            "chunk %d: profile %s (%s intent): %s, pass rate %s; gate manifest %s",
            manifest.chunk_index, profile.name, gate["intent"], gate["counts"], gate["pass_rate"], uri,
        )
        for item in gate["items"]:
            for failure in item["failed"]:
                self.log.warning("quarantined %s: %s [%s, observed %s]", item["image_id"],
                                 failure.get("reason", failure["label"]), failure["label"], failure["observed"])
        if gate["failure"]:
            raise QualityGateFailed(f"{gate['failure']}; see {uri}")
        return uri
