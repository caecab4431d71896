"""DiscoverImagesOperator: list a source location and hand on chunk manifests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.runs import run_root_for


class DiscoverImagesOperator(BaseOperator):
    """Find the images under ``source`` and write one chunk manifest per ``chunk_size`` images.

    Returns the chunk manifests' URIs, which the edit task is mapped over; XCom
    never carries image bytes.

    :param source: directory or URI prefix holding the source images.
    :param workspace: URI prefix where run state (manifests, outputs, reports) lives.
    :param chunk_size: images per mapped edit task.
    """

    template_fields: Sequence[str] = ("source", "workspace", "chunk_size")

    def __init__(self, *, source: str, workspace: str, chunk_size: int | str = 25, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.workspace = workspace
        self.chunk_size = chunk_size

    def execute(self, context) -> list[str]:
        from operators.discovery import discover_images, write_chunk_manifests
        from operators.storage import join_uri, write_json

        run_root, run_key = run_root_for(self.workspace, context)
        discovery = discover_images(self.source)
        chunk_uris = write_chunk_manifests(
            discovery, run_root=run_root, run_key=run_key, chunk_size=int(self.chunk_size)
        )
        summary = {
            "source_root": discovery.source_root,
            "images": len(discovery.items),
            "ignored": discovery.ignored,
            "chunks": chunk_uris,
        }
        write_json(join_uri(run_root, "discovery.json"), summary)
        self.log.info(
            "found %d images under %s (%d other files ignored) in %d chunks",
            len(discovery.items), discovery.source_root, len(discovery.ignored), len(chunk_uris),
        )
        return chunk_uris
