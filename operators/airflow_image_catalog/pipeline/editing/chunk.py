"""One chunk's edit: what every stage needs (:class:`ChunkRun`) and the edit manifest it ends in.

The per-image stages are in :mod:`~airflow_image_catalog.pipeline.editing.stages`; the two paths
that run them, in :mod:`~airflow_image_catalog.pipeline.editing.inline` (one call per image, images
concurrent) and :mod:`~airflow_image_catalog.pipeline.editing.jobs` (provider jobs: deferrable,
OpenAI Batch); the operator's wiring in :mod:`~airflow_image_catalog.pipeline.editing.task`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from airflow_image_catalog.backends.base import EditBackend, ImageContext, backend_identity, is_async
from airflow_image_catalog.recipes import AUTO_MASKS, Recipe, manifest_entry
from airflow_image_catalog.workspace.cache import ResultCache, cache_key
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import (
    ChunkManifest,
    EditManifest,
    EditRecord,
    SourceItem,
    sha256_hex,
)
from airflow_image_catalog.workspace.state import ChunkState

DEFAULT_LOCAL_CONCURRENCY = max(1, os.cpu_count() or 1)


@dataclass
class ChunkRun:
    """Everything one chunk's edit needs; ``workspace`` None disables the result cache."""

    chunk: ChunkManifest
    recipe: Recipe
    backend: EditBackend
    run_root: str
    workspace: str | None = None
    concurrency: int | None = None
    refs: dict[str, bytes] = field(default_factory=dict, repr=False)  # masks / references, read once per chunk
    #: where each paid call is booked (None: not booked, e.g. the local engine's free edits)
    ledger: Any = None
    facts: dict[str, Any] = field(default_factory=dict)  # dag_id, run_id, task_id, map_index for the ledger
    estimate_usd: float | None = None  # the cost check's per-image estimate (booked when usage is missing)
    guard: Any = None  # a costing.BudgetGuard: stop paid work when the run's budget is spent
    overrides: dict[str, Any] = field(default_factory=dict)  # connection settings the cost check replaced

    def __post_init__(self) -> None:
        self.layout = RunLayout(self.run_root)
        self.state = ChunkState(self.run_root, self.chunk.chunk_index)
        self.cache = ResultCache(self.workspace) if self.workspace else None
        self.output_root = self.layout.outputs
        self.identity = backend_identity(self.backend)
        if self.concurrency is None:
            backend = self.backend
            self.concurrency = backend.transport.settings.max_concurrency if is_async(backend) else \
                DEFAULT_LOCAL_CONCURRENCY

    def context(self, item: SourceItem, source_size: tuple[int, int] | None = None) -> ImageContext:
        return ImageContext(item.image_id, self.chunk.source_root, self.recipe.recipe_dir, cache=self.refs,
                            source_size=source_size)

    def key_for(self, item: SourceItem) -> str:
        """The image's content address: source, each step's mask and references, recipe, backend."""
        context = self.context(item)
        inputs = []
        for step in self.recipe.steps:
            mask = step.mask if step.mask in (None, *AUTO_MASKS) else sha256_hex(context.read(step.mask))
            inputs.append({"mask": mask, "references": [sha256_hex(r) for r in context.references(step)]})
        return cache_key(source_sha256=item.source_sha256, recipe_fingerprint=self.recipe.fingerprint,
                         backend=self.identity, inputs=inputs)

    def run_facts(self) -> dict[str, Any]:
        return {"run_key": self.chunk.run_key, "chunk_index": self.chunk.chunk_index}

    def manifest(self, records: list[EditRecord]) -> EditManifest:
        """The chunk's edit manifest over ``records`` (one per image, in the chunk's order)."""
        return new_manifest(self.chunk, self.recipe, self.backend, records)


def new_manifest(chunk: ChunkManifest, recipe: Recipe, backend: EditBackend, records: list[EditRecord]) -> EditManifest:
    return EditManifest(
        run_key=chunk.run_key,
        chunk_index=chunk.chunk_index,
        recipe=manifest_entry(recipe),
        backend=backend.name,
        model=backend.model,
        items=records,
    )
