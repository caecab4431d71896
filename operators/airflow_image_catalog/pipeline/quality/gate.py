"""The quality gate for one chunk: metrics per image -> DataFrame -> GX suite -> verdicts.

Plain functions (Great Expectations and pandas are imported inside them); the
Airflow operator only wires manifests in and out. Failing images are quarantined
with their metrics and reasons; nothing is deleted.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from airflow_image_catalog.pipeline.quality.profiles import INTENTS, Expectation, Profile
from airflow_image_catalog.recipes import AUTO_MASKS, Recipe
from airflow_image_catalog.workspace.manifest import EditManifest, EditRecord, ImageStatus

log = logging.getLogger(__name__)

GATE_SCHEMA_VERSION = 1
VERDICT_PASS = "pass"
VERDICT_QUARANTINED = "quarantined"
VERDICT_NOT_GATED = "not_gated"  # the edit itself failed: nothing to judge
REFRAME_OPS = frozenset({"white_background", "fit_canvas"})


def infer_intent(recipe: Recipe) -> str:
    """How source and edited relate.

    ``reframe``: product cut out onto a new canvas; ``masked``: a local region (from a mask
    file) edited in place; ``region``: the whole product or the whole background edited in
    place (its boundary changes by design, so no seam check); ``global``: a restyle.
    """
    if recipe.quality.intent:
        return recipe.quality.intent
    ops = {step.local.op for step in recipe.steps}
    masks = {step.mask for step in recipe.steps if step.mask}
    if ops & REFRAME_OPS:
        return "reframe"
    if masks and masks <= set(AUTO_MASKS):
        return "region"
    if masks or ops & {"color_match", "place_object"}:
        return "masked"
    return "global"


def edit_region(recipe: Recipe, source: np.ndarray, source_root: str, image_id: str,
                alpha: np.ndarray | None = None) -> np.ndarray | None:
    """Union of the recipe's "edit here" masks on the source (None when no step has a mask).

    "subject" / "background" are the gate's own view of the product (``reframe.source_product``),
    grown by its uncertainty so that an unsure pixel never counts as one that had to stay put.
    """
    from airflow_image_catalog.backends.base import ImageContext
    from airflow_image_catalog.imaging.engine import decode_image
    from airflow_image_catalog.pipeline.quality.reframe import source_product

    region = None
    subject = None
    for step in recipe.steps:
        if step.mask is None:
            continue
        if step.mask in AUTO_MASKS:
            subject = source_product(source, alpha) if subject is None else subject
            mask = subject.maybe if step.mask == "subject" else ~subject.sure
        else:
            context = ImageContext(image_id, source_root, recipe.recipe_dir)
            mask = decode_image(context.read(step.mask)).mean(axis=2) > 127
        region = mask if region is None else region | mask
    return region


def _target_size(recipe: Recipe) -> tuple[int, int] | None:
    size = recipe.step_output(recipe.steps[-1]).size
    return tuple(int(v) for v in size.split("x")) if size else None  # type: ignore[return-value]


def canvas_colour(recipe: Recipe, profile: Profile) -> tuple[int, int, int]:
    """The colour a reframed edit's canvas must be: the profile's, else the recipe's canvas step's, else white."""
    from airflow_image_catalog.imaging.engine._common import hex_to_rgb

    if profile.canvas is not None:
        return profile.canvas
    for step in reversed(recipe.steps):
        background = (step.local.params or {}).get("background")
        if step.local.op in REFRAME_OPS and isinstance(background, str) and background.startswith("#"):
            return hex_to_rgb(background)
    return (255, 255, 255)


def measure(record: EditRecord, recipe: Recipe, intent: str, *, source_root: str, ocr: bool,
            canvas: tuple[int, int, int] = (255, 255, 255), timings: dict[str, float] | None = None,
            ) -> dict[str, Any]:
    """One DataFrame row: every metric for one edited image, plus derived marketplace columns.

    The product is the gate's own finding (``reframe``), never the editor's segmentation. A
    reframed JPEG is decoded at the smallest DCT scale that still holds the source product at
    its own resolution (``reframe.decode_pair``); ``timings`` (if given) adds seconds per stage.
    """
    import time

    from airflow_image_catalog.pipeline.quality.metrics import compute_metrics
    from airflow_image_catalog.pipeline.quality.reframe import decode_pair
    from airflow_image_catalog.storage import read_bytes

    started = time.perf_counter()
    source_bytes, edited_bytes = read_bytes(record.source_uri), read_bytes(record.output_uri)
    view, edited = decode_pair(source_bytes, edited_bytes, reduce=intent == "reframe")
    source = view.decoded
    decoded = time.perf_counter()
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + decoded - started
    in_place = intent in ("masked", "region")
    mask = edit_region(recipe, source.rgb, source_root, record.image_id, source.alpha) if in_place else None
    metrics = compute_metrics(
        source.rgb, edited.rgb, edited_bytes=edited_bytes, intent="masked" if in_place else intent, edit_mask=mask,
        target_size=_target_size(recipe), ocr=ocr and intent != "region", background=canvas,
        source_alpha=source.alpha, edited_scale=edited.scale, source_view=view, timings=timings,
    )
    metrics["intent"] = intent
    width, height = int(metrics["width"]), int(metrics["height"])
    return {
        "image_id": record.image_id,
        **metrics,
        "longest_side": max(width, height),
        "shortest_side": min(width, height),
        "megapixels": round(width * height / 1e6, 3),
        "file_mb": round(len(edited_bytes) / 1e6, 3),
    }


@dataclass
class Validation:
    success: bool
    failed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # image_id -> failed expectations
    statistics: dict[str, Any] = field(default_factory=dict)
    data_docs_dir: str | None = None


def _gx_context(docs_dir: str | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if docs_dir:
        context.add_data_docs_site(
            site_name="quality_gate",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def validate_rows(
    rows: list[dict[str, Any]], expectations: list[Expectation], *, suite_name: str, docs_dir: str | None = None
) -> Validation:
    """Validate the metrics rows with a GX suite; map every failing row back to its image id.

    Each failure carries the expectation's category and the reviewer's sentence (``reasons``).
    """
    import great_expectations as gx
    import pandas as pd

    from airflow_image_catalog.pipeline.quality.reasons import reason_for

    frame = pd.DataFrame(rows)
    applicable = [e for e in expectations if e.metric in frame.columns]
    missing = sorted({e.metric for e in expectations} - set(frame.columns))
    if missing:
        log.warning("profile %s checks metrics this run does not have: %s", suite_name, missing)
    if frame.empty or not applicable:
        return Validation(success=True)
    context = _gx_context(docs_dir)
    batch = context.data_sources.add_pandas("catalog").add_dataframe_asset("image_metrics")
    # filled before it is stored: added to a stored suite, each expectation is one more store round-trip
    # (serialise, save, reload the suite), a tenth of the chunk's validation time
    suite = gx.ExpectationSuite(name=suite_name)
    for expectation in applicable:
        suite.add_expectation(expectation.to_gx())
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_gate", data=batch.add_batch_definition_whole_dataframe("chunk"),
                                suite=suite)
    )
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["image_id"]}
    if docs_dir:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{suite_name}_checkpoint", validation_definitions=[definition], result_format=result_format,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["quality_gate"])],
        ))
        result = next(iter(checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values()))
    else:
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
    failed: dict[str, list[dict[str, Any]]] = {}
    by_label = {e.label: e for e in reversed(applicable)}
    by_id = {row["image_id"]: row for row in rows}
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        column = config.kwargs.get("column")
        label = config.meta.get("label", column)
        for row in item.result.get("unexpected_index_list") or []:
            expectation = by_label.get(label)
            failed.setdefault(row["image_id"], []).append({
                "expectation": config.type,
                "label": label,
                "metric": column,
                "observed": _plain(row.get(column)),
                "why": config.meta.get("why", ""),
                "category": config.meta.get("category", "integrity"),
                "reason": reason_for(expectation, by_id.get(row["image_id"], {})) if expectation else label,
            })
    return Validation(success=result.success, failed=failed, statistics=dict(result.statistics),
                      data_docs_dir=docs_dir)


def _plain(value: Any) -> Any:
    """numpy scalars -> JSON-friendly Python values."""
    return value.item() if hasattr(value, "item") else value


def _assertions_summary(expectations: list[Expectation], validation: Validation) -> list[dict[str, Any]]:
    failing = {f["label"] for items in validation.failed.values() for f in items}
    return [{"assertion": e.label, "column": e.metric, "success": e.label not in failing} for e in expectations]


def gate_chunk(
    manifest: EditManifest,
    recipe: Recipe,
    profile: Profile,
    *,
    source_root: str,
    quarantine_root: str | None,
    docs_root: str | None,
    ocr: bool = True,
) -> dict[str, Any]:
    """Judge every edited image of a chunk; quarantine failures; return the gate manifest.

    ``quarantine_root`` None: verdicts only, nothing queued for review (a canary's edits are measured,
    never published, so its failures are no reviewer's work).
    """
    import time

    from airflow_image_catalog.storage import join_uri, read_bytes, write_bytes, write_json

    intent = infer_intent(recipe)
    if intent not in INTENTS:
        raise ValueError(f"unknown intent {intent!r}")
    expectations = profile.for_intent(intent)
    canvas = canvas_colour(recipe, profile)
    rows, items, errors = [], {}, {}
    timings: dict[str, float] = {}
    for record in manifest.items:
        if record.status != ImageStatus.EDITED:
            items[record.image_id] = {"image_id": record.image_id, "verdict": VERDICT_NOT_GATED, "failed": []}
            continue
        try:
            rows.append(measure(record, recipe, intent, source_root=source_root, ocr=ocr, canvas=canvas,
                                timings=timings))
        except Exception as exc:  # an image the gate cannot measure is not publishable
            errors[record.image_id] = f"{type(exc).__name__}: {exc}"
            log.warning("cannot measure %s: %s", record.image_id, errors[record.image_id])

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        validation = validate_rows(rows, expectations, suite_name=profile.name,
                                   docs_dir=tmp if docs_root else None)
        docs_index = _upload_tree(Path(tmp), docs_root) if docs_root and rows else None
    timings["validation"] = time.perf_counter() - started

    by_id = {record.image_id: record for record in manifest.items}
    for row in rows:
        failed = validation.failed.get(row["image_id"], [])
        items[row["image_id"]] = {
            "image_id": row["image_id"],
            "verdict": VERDICT_QUARANTINED if failed else VERDICT_PASS,
            "failed": failed,
            "reasons": [f["reason"] for f in failed],
            "metrics": {k: _plain(v) for k, v in row.items() if k != "image_id"},
        }
    for image_id, error in errors.items():
        reason = f"The gate could not measure this image: {error}"
        items[image_id] = {"image_id": image_id, "verdict": VERDICT_QUARANTINED, "metrics": {}, "reasons": [reason],
                           "failed": [{"expectation": "measurable", "label": "metrics computed", "metric": None,
                                       "observed": error, "why": "the gate could not measure this image",
                                       "category": "file", "reason": reason}]}
    for item in items.values():
        if item["verdict"] != VERDICT_QUARANTINED or quarantine_root is None:
            continue
        record = by_id[item["image_id"]]
        extension = record.output_uri.rsplit(".", 1)[-1]
        item["quarantine_uri"] = write_bytes(
            join_uri(quarantine_root, f"{record.image_id}.{extension}"), read_bytes(record.output_uri)
        )
        write_json(join_uri(quarantine_root, f"{record.image_id}.json"), {
            **item, "source_uri": record.source_uri, "source_sha256": record.source_sha256,
            "output_uri": record.output_uri, "output_sha256": record.output_sha256, "width": record.width,
            "height": record.height, "run_key": manifest.run_key, "profile": profile.name, "review": None,
        })
    ordered = [items[r.image_id] for r in manifest.items]
    counts = {v: sum(1 for i in ordered if i["verdict"] == v)
              for v in (VERDICT_PASS, VERDICT_QUARANTINED, VERDICT_NOT_GATED)}
    gated = counts[VERDICT_PASS] + counts[VERDICT_QUARANTINED]
    return {
        "kind": "gate",
        "schema_version": GATE_SCHEMA_VERSION,
        "run_key": manifest.run_key,
        "chunk_index": manifest.chunk_index,
        "profile": profile.name,
        "profile_origin": profile.origin,
        "intent": intent,
        "items": ordered,
        "counts": counts,
        "pass_rate": round(counts[VERDICT_PASS] / gated, 4) if gated else None,
        "assertions": _assertions_summary(expectations, validation),
        "statistics": {k: _plain(v) for k, v in validation.statistics.items()},
        "data_docs": docs_index,
        "canvas": "#{:02X}{:02X}{:02X}".format(*canvas),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def _upload_tree(local_root: Path, target_root: str) -> str | None:
    """Copy a locally built Data Docs site to object storage; return its index URI."""
    from airflow_image_catalog.storage import join_uri, write_bytes

    index = None
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            uri = write_bytes(join_uri(target_root, path.relative_to(local_root).as_posix()), path.read_bytes())
            index = uri if path.relative_to(local_root).as_posix() == "index.html" else index
    return index
