"""DiscoverImagesOperator: list a source location and hand on chunk manifests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.workspace.runs import run_root_for


class DiscoverImagesOperator(ReportsLineage, BaseOperator):
    """Find the new and changed images under ``source`` and write one chunk manifest per ``chunk_size``.

    Images already published from the same bytes with the same recipe (per the workspace's
    published manifest) are left out, so refreshing an unchanged catalog maps no edit task
    and costs nothing. A rerun of the same DAG run reuses its first discovery, so every
    chunk (and its recorded per-image state) means the same images on every try. Returns the chunk manifests' URIs, which the edit task is mapped
    over; XCom never carries image bytes.

    :param source: directory or URI prefix holding the source images.
    :param workspace: URI prefix where run state (manifests, outputs, reports) lives.
    :param chunk_size: images per mapped edit task.
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
        chunk_size: int | str = 50,
        recipe: str | None = None,
        only_changed: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.workspace = workspace
        self.chunk_size = chunk_size
        self.recipe = recipe
        self.only_changed = only_changed

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.config.params import as_bool
        from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
        from airflow_image_catalog.pipeline.publishing.publish import published_manifest_uri
        from airflow_image_catalog.recipes import load_recipe
        from airflow_image_catalog.storage import join_uri, read_json, storage_for, write_json

        run_root, run_key = run_root_for(self.workspace, context)
        summary_uri = join_uri(run_root, "discovery.json")
        if storage_for(summary_uri).exists(summary_uri):  # a rerun of this run: the same images, the same chunks
            summary = read_json(summary_uri)
            self.log.info("reusing this run's discovery: %d images in %d chunks", summary["images"],
                          len(summary["chunks"]))
            return summary["chunks"]
        state: dict = {}
        if as_bool(self.only_changed, "only_changed"):
            uri = published_manifest_uri(self.workspace)
            state = read_json(uri) if storage_for(uri).exists(uri) else {}
        fingerprint = load_recipe(self.recipe).fingerprint if self.recipe else None
        discovery = discover_images(self.source, published=state.get("images"), recipe_fingerprint=fingerprint,
                                    refused=state.get("failed_final"))
        chunk_uris = write_chunk_manifests(
            discovery, run_root=run_root, run_key=run_key, chunk_size=int(self.chunk_size)
        )
        summary = {
            "source_root": discovery.source_root,
            "images": len(discovery.items),
            "unchanged": len(discovery.unchanged),
            "refused_before": discovery.refused,
            "ignored": discovery.ignored,
            "chunks": chunk_uris,
        }
        write_json(summary_uri, summary)  # last: it commits the run's discovery
        self.log.info(
            "found %d new or changed images under %s in %d chunks (%d unchanged since published, %d refused "
            "before with the same bytes, %d other files ignored)",
            len(discovery.items), discovery.source_root, len(chunk_uris), len(discovery.unchanged),
            len(discovery.refused), len(discovery.ignored),
        )
        return chunk_uris
