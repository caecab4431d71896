"""ImageEditOperator: edit one chunk of images with a recipe through a backend."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from operators.hooks.image_edit import ImageEditHook


class ImageEditOperator(BaseOperator):
    """Edit every image of a chunk manifest and write the outputs and an edit manifest.

    Meant to be mapped over the chunk manifests a discover task returns
    (``ImageEditOperator.partial(...).expand(chunk_manifest_uri=discover.output)``).
    Each image ends ``edited`` or ``failed`` with a reason; one bad image never
    fails the chunk. Returns the edit manifest's URI.

    :param chunk_manifest_uri: URI of the chunk manifest to edit.
    :param recipe: a shipped recipe name or the path / URI of a recipe file.
    :param workspace: URI prefix where run state lives.
    :param backend_conn_id: ``image_edit`` connection that selects the backend.
    """

    template_fields: Sequence[str] = ("chunk_manifest_uri", "recipe", "workspace", "backend_conn_id")

    def __init__(
        self,
        *,
        chunk_manifest_uri: str,
        recipe: str,
        workspace: str,
        backend_conn_id: str = ImageEditHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uri = chunk_manifest_uri
        self.recipe = recipe
        self.workspace = workspace
        self.backend_conn_id = backend_conn_id

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def execute(self, context) -> str:
        from operators.editing import edit_chunk
        from operators.manifest import ChunkManifest
        from operators.recipes import load_recipe
        from operators.storage import join_uri, read_json, write_json

        chunk = ChunkManifest.from_dict(read_json(self.chunk_manifest_uri))
        recipe = load_recipe(self.recipe)
        backend = self.hook.get_backend()
        run_root = join_uri(self.workspace, "runs", chunk.run_key)
        self.log.info(
            "chunk %d: %d images, recipe %s (%d steps), backend %s",
            chunk.chunk_index, len(chunk.items), recipe.name, len(recipe.steps), backend.model,
        )
        manifest = edit_chunk(chunk, recipe, backend, output_root=join_uri(run_root, "outputs"))
        uri = write_json(join_uri(run_root, "edits", f"chunk-{chunk.chunk_index:05d}.json"), manifest.to_dict())
        self.log.info("chunk %d done: %s; manifest %s", chunk.chunk_index, manifest.counts(), uri)
        return uri
