"""Durable per-image state of a chunk, so a rerun redoes only what has no final result.

Each image's :class:`~airflow_image_catalog.workspace.manifest.EditRecord` is written to
``runs/<run>/state/chunk-NNNNN/<image_id>.json`` before every paid call (``submitted``,
with the provider job id when there is one) and after it (``edited``,
``failed_retryable`` or ``failed_final``). No record means ``pending``. A hidden marker
object says the chunk has started, so a first run makes one existence check instead of
one read per image.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from airflow_image_catalog.storage import join_uri, list_objects, read_json, storage_for, write_json
from airflow_image_catalog.workspace.layout import RunLayout
from airflow_image_catalog.workspace.manifest import EditRecord

STARTED_MARKER = ".started"


class ChunkState:
    """The per-image records of one chunk of one run."""

    def __init__(self, run_root: str, chunk_index: int):
        self.root = RunLayout(run_root).state(chunk_index)
        self._marker = join_uri(self.root, STARTED_MARKER)

    def uri(self, image_id: str) -> str:
        return join_uri(self.root, f"{image_id}.json")

    def load(self) -> dict[str, dict[str, Any]]:
        """image id -> the last recorded state (record fields plus ``pending_job`` where a job is out)."""
        if not storage_for(self._marker).exists(self._marker):
            return {}
        states = {}
        for obj in list_objects(self.root):
            if obj.uri.endswith(".json"):
                state = read_json(obj.uri)
                states[state["record"]["image_id"]] = state
        return states

    def start(self) -> None:
        if not storage_for(self._marker).exists(self._marker):
            write_json(self._marker, {"started": True})

    def save(self, record: EditRecord, *, pending_job: dict[str, Any] | None = None) -> None:
        write_json(self.uri(record.image_id), {"record": asdict(record), "pending_job": pending_job})

    @staticmethod
    def record_of(state: dict[str, Any]) -> EditRecord:
        return EditRecord(**state["record"])
