"""``OperatorLineage`` for each catalog operator (imported only inside ``get_openlineage_facets_*``).

Every function takes the operator (its templates rendered) and, on complete / failure, the task
instance. The manifests a task wrote are found from the operator's fields and the run key, not
through XCom: the OpenLineage listener extracts in a forked process, where talking to the
supervisor is unsafe, and a failed task pushed no return value anyway. Missing or unreadable
manifests only leave facets out: lineage must never fail a task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import data_quality_assertions_dataset

from airflow_image_catalog.lineage import builders, dataset_for
from airflow_image_catalog.lineage.facets import (
    COST_FACET,
    EDIT_FACET,
    QUALITY_FACET,
    RIGHTS_FACET,
    ImageCatalogCostRunFacet,
    ImageCatalogEditRunFacet,
    ImageCatalogQualityRunFacet,
    ImageCatalogRightsRunFacet,
)
from airflow_image_catalog.pipeline.costing.ledger import Ledger
from airflow_image_catalog.recipes import load_recipe
from airflow_image_catalog.storage import StorageError, read_json_if_exists
from airflow_image_catalog.workspace.layout import RunLayout, WorkspaceLayout
from airflow_image_catalog.workspace.manifest import safe_run_key

log = logging.getLogger(__name__)


def _read(uri: str | None) -> dict[str, Any] | None:
    """A manifest, or None when there is none (yet) or it cannot be read."""
    if not uri:
        return None
    try:
        return read_json_if_exists(uri)
    except (StorageError, OSError, ValueError) as exc:
        log.warning("lineage: cannot read %s: %s", uri, exc)
        return None


def _datasets(kind: type, uris: Iterable[str | None], facets: Mapping[str, Any] | None = None) -> list:
    found = []
    for uri in uris:
        if not uri:
            continue
        namespace, name = dataset_for(uri)
        found.append(kind(namespace=namespace, name=name, **({"inputFacets": dict(facets)} if facets else {})))
    return found


def _lineage(inputs: Iterable[str | None], outputs: Iterable[str | None] = (),
             run_facets: Mapping[str, Any] | None = None, input_facets: Mapping[str, Any] | None = None
             ) -> OperatorLineage:
    return OperatorLineage(inputs=_datasets(InputDataset, inputs, input_facets),
                           outputs=_datasets(OutputDataset, outputs), run_facets=dict(run_facets or {}))


def _run(workspace: str, run_key: str) -> RunLayout:
    return WorkspaceLayout(workspace).run(run_key)


def _outputs(workspace: str, run_key: str | None) -> str | None:
    """The run's edited images: one dataset, ``<workspace>/runs/<run>/outputs``."""
    return _run(workspace, run_key).outputs if run_key else None


def _run_key(task_instance: Any, manifests: Iterable[str] = ()) -> str | None:
    """The run's storage key: from the task instance, else from the first readable manifest."""
    if task_instance is not None and getattr(task_instance, "run_id", None):
        return safe_run_key(task_instance.run_id)
    for uri in manifests:
        manifest = _read(uri)
        if manifest and manifest.get("run_key"):
            return str(manifest["run_key"])
    return None


def _uris(value: Any) -> list[str]:
    """A rendered manifest list, when it is a plain list.

    A mapped upstream's output renders to a lazy XCom sequence that fetches from the supervisor
    when iterated: the listener's forked process must not (it hangs until the listener kills it).
    """
    if isinstance(value, str):
        return [value] if "://" in value else []
    if not isinstance(value, list | tuple):
        return []
    return [str(v) for v in value if v]


def _ledger_entries(workspace: str, run_key: str, chunk_index: int | None = None) -> list[Any]:

    try:
        entries = Ledger(workspace).entries(run_key=run_key)
    except (StorageError, OSError, ValueError) as exc:
        log.warning("lineage: cannot read the ledger of %s: %s", run_key, exc)
        return []
    return [e for e in entries if chunk_index is None or e.chunk_index == chunk_index]


def _run_cost(workspace: str, run_key: str) -> dict[str, Any]:
    """The run-level cost facet: the cost check's decision and everything the ledger booked."""
    run = _run(workspace, run_key)
    decision = _read(run.cost_decision)
    routed = (_read(run.cost_report) or {}).get("routing") if (decision or {}).get("routing") else None
    return {COST_FACET: ImageCatalogCostRunFacet(**builders.cost_fields(decision, _ledger_entries(workspace, run_key),
                                                                        routed=routed))}


def source_lineage(source: str) -> OperatorLineage:
    """Discover and the sensor read the source prefix; what they hand on is internal state."""
    return _lineage([source])


def source_operator_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """Discover and the new-images sensor read the source prefix and write no catalog dataset."""
    return source_lineage(op.source)


def rights_check_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """Input: the source prefix the chunks list; on complete: the rights facet (decision counts and reasons)."""
    uris = _uris(op.chunk_manifest_uris)
    first = _read(uris[0]) if uris else None
    run_key = _run_key(task_instance, uris)
    facets: dict[str, Any] = {}
    if task_instance is not None and run_key:
        decision = _read(_run(op.workspace, run_key).rights_decision)
        if decision is not None:
            facets[RIGHTS_FACET] = ImageCatalogRightsRunFacet(**builders.rights_fields(decision))
    return _lineage([(first or {}).get("source_root")], run_facets=facets)


def cost_check_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """Input: the source prefix the chunks list; on complete: the run's estimate and decision."""
    uris = _uris(op.chunk_manifest_uris)
    first = _read(uris[0]) if uris else None
    run_key = _run_key(task_instance, uris)
    facets = _run_cost(op.workspace, run_key) if task_instance is not None and run_key else {}
    return _lineage([(first or {}).get("source_root")], run_facets=facets)


def edit_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """Source prefix -> the run's outputs prefix; on complete: the edit and the chunk's cost facets."""
    chunk = _read(op.chunk_manifest_uri)
    if chunk is None:
        return OperatorLineage()
    run_key, index = chunk["run_key"], chunk["chunk_index"]
    run_facets: dict[str, Any] = {}
    if task_instance is not None:
        manifest = _read(_run(op.workspace, run_key).edit(index))
        if manifest is not None:
            fields = builders.edit_fields(manifest, _prompts(manifest))
            run_facets[EDIT_FACET] = ImageCatalogEditRunFacet(**fields)
            decision = _read(_run(op.workspace, run_key).cost_decision)
            run_facets[COST_FACET] = ImageCatalogCostRunFacet(**builders.cost_fields(
                decision, _ledger_entries(op.workspace, run_key, index), scope="chunk",
                images=fields["images"], cache_hits=fields["cacheHits"]))
    return _lineage([chunk.get("source_root")], [_outputs(op.workspace, run_key)], run_facets)


def _prompts(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    """Prompt hashes of the recipe the manifest names (none when the recipe cannot be loaded)."""
    try:
        return builders.prompt_hashes(load_recipe(manifest["recipe"]["origin"]).steps)
    except Exception as exc:  # a moved recipe file only costs the hashes
        log.warning("lineage: cannot load recipe %s: %s", (manifest.get("recipe") or {}).get("origin"), exc)
        return []


def quality_gate_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """Outputs prefix -> quarantine prefix; on complete: the quality facet and DQ assertions on the input."""
    edit = _read(op.edit_manifest_uri)
    if edit is None:
        return OperatorLineage()
    run_key, index = edit["run_key"], edit["chunk_index"]
    run_facets: dict[str, Any] = {}
    input_facets: dict[str, Any] = {}
    if task_instance is not None:
        gate = _read(_run(op.workspace, run_key).gate(index))
        if gate is not None:
            try:
                threshold: float | None = float(op.min_pass_rate)
            except (TypeError, ValueError):
                threshold = None
            run_facets[QUALITY_FACET] = ImageCatalogQualityRunFacet(**builders.quality_fields(gate, threshold))
            assertions = [data_quality_assertions_dataset.Assertion(**a) for a in builders.assertion_fields(gate)]
            input_facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=assertions)
    quarantine = WorkspaceLayout(op.workspace).run_quarantine(run_key)
    return _lineage([_outputs(op.workspace, run_key)], [quarantine], run_facets, input_facets)


def publish_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """The run's outputs prefix -> the published catalog; on complete: the run's cost (estimate and actual).

    The run key comes from the task instance (publish reads its chunks at runtime, not from a template).
    """
    run_key = _run_key(task_instance)
    facets = _run_cost(op.workspace, run_key) if task_instance is not None and run_key else {}
    return _lineage([_outputs(op.workspace, run_key)], [op.published], facets)


def review_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """A reviewer moves images from the quarantine (all runs) to the published catalog."""
    return _lineage([WorkspaceLayout(op.workspace).quarantine], [op.published])


def consent_lineage(op: Any, task_instance: Any = None) -> OperatorLineage:
    """A reviewer answers the consent queue: it reads and rewrites the queue (the next refresh edits)."""
    queue = WorkspaceLayout(op.workspace).consent
    return _lineage([queue], [queue])
