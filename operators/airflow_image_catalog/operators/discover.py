"""DiscoverImagesOperator: list a source location and hand on chunk manifests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, conf

from airflow_image_catalog.config.params import as_bool
from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.pipeline.discovery.discover import discover_run
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class DiscoverImagesOperator(ReportsLineage, BaseOperator):
    """Find the new and changed images under ``source`` and write one chunk manifest per ``chunk_size``.

    Images already published from the same bytes with the same recipe (per the workspace's
    published manifest) are left out, so refreshing an unchanged catalog maps no edit task
    and costs nothing. A rerun of the same DAG run reuses its first discovery, so every
    chunk (and its recorded per-image state) means the same images on every try. Returns the chunk manifests' URIs, which the edit task is mapped
    over; XCom never carries image bytes.

    :param source: directory or URI prefix holding the source images.
    :param workspace: URI prefix where run state (manifests, outputs, reports) lives.
    :param chunk_size: images per mapped edit task; empty (None, ``""``): as many as fill ``edit_slots`` in
        whole waves (1,000 images on 8 slots: 8 chunks of 125), see
        :mod:`~airflow_image_catalog.pipeline.discovery.chunking`.
    :param edit_slots: edit task instances that run at once (the edit task's ``max_active_tis_per_dag``,
        or the slots of its pool); capped at runtime by ``[core] parallelism``.
    :param recipe: the recipe the run applies; a changed recipe re-edits published images.
    :param only_changed: False hands on every image, including those that failed finally
        before (a full re-edit; the result cache still makes unchanged edits free).
    """

    lineage_function = "source_operator_lineage"
    template_fields: Sequence[str] = ("source", "workspace", "chunk_size", "recipe", "only_changed")

    def __init__(
        self,
        *,
        source: str,
        workspace: str,
        chunk_size: int | str | None = None,
        edit_slots: int = 8,
        recipe: str | None = None,
        only_changed: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.workspace = workspace
        self.chunk_size = chunk_size
        self.edit_slots = edit_slots
        self.recipe = recipe
        self.only_changed = only_changed

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.pipeline.discovery.chunking import edit_slots

        run = WorkspaceLayout(self.workspace).run_for(context)
        chunk_size = int(self.chunk_size) if self.chunk_size not in (None, "", "None") else None
        found = discover_run(
            self.source,
            workspace=self.workspace,
            run_root=run.root,
            run_key=run.run_key,
            chunk_size=chunk_size,
            recipe=self.recipe,
            only_changed=as_bool(self.only_changed, "only_changed"),
            slots=edit_slots(self.edit_slots, conf.getint("core", "parallelism", fallback=32)),
        )
        summary = found.summary
        if found.reused:
            self.log.info("reusing this run's discovery: %d images in %d chunks", summary["images"],
                          len(summary["chunks"]))
        else:
            self.log.info(
                "found %d new or changed images under %s in %d chunks of %s (%d unchanged since published, %d "
                "refused before with the same bytes, %d other files ignored)",
                summary["images"], summary["source_root"], len(summary["chunks"]),
                f"{summary['chunk_size']} ({summary['chunk_size_from']})", summary["unchanged"],
                len(summary["refused_before"]), len(summary["ignored"]),
            )
        return found.chunk_uris
