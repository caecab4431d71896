"""Dataset naming and the custom facets built from manifests: pure, no Airflow run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from airflow_image_catalog.lineage import (
    FACET_SCHEMA_VERSION,
    dataset_for,
    lineage_base_url,
    producer_url,
    schema_url,
)
from airflow_image_catalog.lineage.builders import (
    assertion_fields,
    cost_fields,
    edit_fields,
    prompt_hashes,
    quality_fields,
)
from airflow_image_catalog.workspace.manifest import EditManifest, EditRecord
from tests.conftest import REPO
from tests.lineage.conftest import SCHEMAS


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://catalog-bucket/runs/r1/outputs/", ("s3://catalog-bucket", "runs/r1/outputs")),
    ("s3://catalog-bucket", ("s3://catalog-bucket", "/")),
    ("file:///data/work/runs/r%201/outputs", ("file", "/data/work/runs/r 1/outputs")),
    ("/data/published/", ("file", "/data/published")),
    ("gs://other/prefix", ("gs://other", "prefix")),
])
def test_dataset_names_follow_the_openlineage_naming_spec(uri, expected):
    assert dataset_for(uri) == expected


def test_relative_garbage_is_not_a_dataset():
    with pytest.raises(ValueError):
        dataset_for("s3:///no-bucket")


def _manifest() -> dict:
    records = [
        EditRecord("a", "file:///s/a.jpg", "0" * 64, "edited", cache_hit=True, attempts=0),
        EditRecord("b", "file:///s/b.jpg", "1" * 64, "edited", attempts=2, rounds=[
            {"round": 1, "step": "s1", "decision": "continue"},
            {"round": 2, "step": "s2", "decision": "regenerated_from_source", "instruction": "the prompt text"}]),
        EditRecord("c", "file:///s/c.jpg", "2" * 64, "failed_final", error="no plain backdrop", attempts=1),
    ]
    return EditManifest("run1", 3, {"name": "r", "fingerprint": "f" * 64, "origin": "r.yaml"}, "openai",
                        "gpt-image-1", records).to_dict()


def test_edit_fields_count_statuses_cache_hits_rounds_and_hash_prompts():
    from airflow_image_catalog.recipes import load_recipe

    recipe = load_recipe("marketplace_white_square")
    fields = edit_fields(_manifest(), prompt_hashes(recipe.steps))
    assert fields["backend"] == "openai" and fields["model"] == "gpt-image-1" and fields["recipe"] == "r"
    assert fields["images"] == 3 and fields["cacheHits"] == 1 and fields["attempts"] == 3
    assert fields["statusCounts"] == {"edited": 2, "failed_final": 1, "failed_retryable": 0, "skipped_budget": 0}
    assert (fields["rounds"], fields["regenerations"], fields["chunkIndex"]) == (2, 1, 3)
    assert fields["prompts"] == [{"step": s.id, "sha256": hashlib.sha256(s.prompt.encode()).hexdigest()}
                                 for s in recipe.steps]
    assert "the prompt text" not in json.dumps(fields) and recipe.steps[0].prompt not in json.dumps(fields)


def test_cost_fields_from_the_decision_and_ledger_entries():
    decision = {"action": "downgrade", "policy": "downgrade", "estimate_usd": 1.5, "low_usd": 1.0, "high_usd": 2.0,
                "images": 10, "cache_hits": 2, "limited_by": "run", "per_image_usd": 0.25}
    entries = [{"usd": 0.1, "usage": {"provider": "openai", "input_image_tokens": 300, "input_text_tokens": 20,
                                      "output_tokens": 4000}},
               {"usd": 0.05, "usage": {"provider": "bfl", "credits": 4}}]
    run = cost_fields(decision, entries)
    assert run == {"scope": "run", "currency": "USD", "paidCalls": 2, "actual": 0.15, "inputTokens": 320,
                   "outputTokens": 4000, "credits": 4.0, "estimate": 1.5, "estimateLow": 1.0, "estimateHigh": 2.0,
                   "images": 10, "cacheHits": 2, "decision": "downgrade", "policy": "downgrade", "limitedBy": "run",
                   "routing": None}
    chunk = cost_fields(decision, entries[:1], scope="chunk", images=3, cache_hits=1)
    assert chunk["estimate"] == 0.5 and chunk["actual"] == 0.1 and chunk["images"] == 3
    assert cost_fields(None)["estimate"] is None and cost_fields(None)["actual"] == 0.0


GATE = {
    "kind": "gate", "chunk_index": 0, "profile": "amazon_main", "profile_origin": "shipped", "intent": "reframe",
    "counts": {"pass": 1, "quarantined": 2, "not_gated": 1}, "pass_rate": 0.3333,
    "items": [{"image_id": "a", "verdict": "pass", "failed": []},
              {"image_id": "b", "verdict": "quarantined", "failed": [{"label": "product fills 80-87%"}]},
              {"image_id": "c", "verdict": "quarantined",
               "failed": [{"label": "product fills 80-87%"}, {"label": "white background"}]},
              {"image_id": "d", "verdict": "not_gated", "failed": []}],
    "assertions": [{"assertion": "product fills 80-87%", "column": "product_fill", "success": False},
                   {"assertion": "white background", "column": "background_white_ratio", "success": False},
                   {"assertion": "square", "column": "aspect_ratio", "success": True}],
}


def test_quality_fields_and_assertions_from_a_gate_manifest():
    fields = quality_fields(GATE, 0.8)
    assert (fields["suite"], fields["passed"], fields["quarantined"], fields["notGated"]) == ("amazon_main", 1, 2, 1)
    assert fields["passRate"] == 0.3333 and fields["minPassRate"] == 0.8
    assert fields["failedExpectations"] == {"product fills 80-87%": 2, "white background": 1}
    assert assertion_fields(GATE)[0] == {"assertion": "product fills 80-87%", "success": False,
                                         "column": "product_fill"}


def test_facets_serialise_to_their_published_schemas(validate_facet):
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.serde import Serde

    from airflow_image_catalog.lineage.facets import (
        FACET_CLASSES,
        ImageCatalogCostRunFacet,
        ImageCatalogEditRunFacet,
        ImageCatalogQualityRunFacet,
    )

    # the spec's custom facet naming: {prefix}{name}{entity}Facet under the key {prefix}_{name}
    assert {key: cls.__name__ for key, cls in FACET_CLASSES.items()} == {
        "imageCatalog_edit": "ImageCatalogEditRunFacet", "imageCatalog_cost": "ImageCatalogCostRunFacet",
        "imageCatalog_quality": "ImageCatalogQualityRunFacet", "imageCatalog_rights": "ImageCatalogRightsRunFacet"}
    facets = [ImageCatalogEditRunFacet(**edit_fields(_manifest(), [{"step": "s1", "sha256": "a" * 64}])),
              ImageCatalogCostRunFacet(**cost_fields({"estimate_usd": 1.0, "action": "go"})),
              ImageCatalogCostRunFacet(**cost_fields(None, scope="chunk", images=2, cache_hits=0)),
              ImageCatalogQualityRunFacet(**quality_fields(GATE, None))]
    for facet in facets:
        data = Serde.to_dict(facet)
        name = type(facet).__name__
        assert data["_schemaURL"] == schema_url(name) == (
            f"http://localhost:8080/image-catalog/lineage/schemas/{FACET_SCHEMA_VERSION}/{name}.json#/$defs/{name}")
        assert data["_producer"] == producer_url() == "http://localhost:8080/image-catalog/lineage/0.1.0"
        validate_facet(data)
    with pytest.raises(Exception, match="is not of type|required"):
        validate_facet({**Serde.to_dict(facets[3]), "passed": "many"})
    dq_facet = dq.DataQualityAssertionsDatasetFacet(assertions=[dq.Assertion(**a) for a in assertion_fields(GATE)])
    assert Serde.to_dict(dq_facet)["assertions"][2].items() >= {"assertion": "square", "success": True,
                                                                "column": "aspect_ratio"}.items()


def test_schema_files_are_draft_2020_12_and_extend_the_run_facet():
    jsonschema = pytest.importorskip("jsonschema")
    paths = sorted(SCHEMAS.glob("*.json"))
    assert [p.stem for p in paths] == ["ImageCatalogCostRunFacet", "ImageCatalogEditRunFacet",
                                       "ImageCatalogQualityRunFacet", "ImageCatalogRightsRunFacet"]
    for path in paths:
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "$id" not in schema  # identified by the URL it is served at (one per deployment and version)
        facet = schema["$defs"][path.stem]
        assert facet["allOf"][0]["$ref"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"


def test_schema_and_producer_urls_follow_the_configuration(monkeypatch):
    """``[api] base_url`` moves them with the api-server; ``[image_catalog] lineage_base_url`` pins them to one
    canonical place (e.g. where a team mirrors the schemas) for every deployment."""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert schema_url("ImageCatalogCostRunFacet").startswith(
        f"https://airflow.example.com/image-catalog/lineage/schemas/{FACET_SCHEMA_VERSION}/ImageCatalogCostRunFacet.json#")
    monkeypatch.setenv("AIRFLOW__IMAGE_CATALOG__LINEAGE_BASE_URL", "https://schemas.example.com/catalog/")
    assert lineage_base_url() == "https://schemas.example.com/catalog"
    assert producer_url() == "https://schemas.example.com/catalog/0.1.0"


def test_the_event_validator_refuses_what_the_spec_refuses():
    """The offline validator is only worth what it refuses."""
    from tests.lineage.openlineage_spec import EventValidator, SpecError

    good = {"eventTime": "2026-11-26T10:00:00.000Z", "eventType": "COMPLETE",
            "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": "01a2335f-3dfd-7522-b3ca-cd1e47e8f0f1", "facets": {}},
            "job": {"namespace": "catalog", "name": "catalog_refresh.publish", "facets": {}},
            "inputs": [{"namespace": "file", "name": "/data/work/runs/r1/outputs"}], "outputs": []}
    validator = EventValidator(lambda url: None)
    validator.validate(good)
    bad = [
        {**good, "eventType": "FINISHED"},
        {**good, "eventTime": "yesterday"},
        {**good, "run": {"runId": "not-a-uuid"}},
        {**good, "job": {"namespace": "catalog"}},  # no name
        {**good, "inputs": [{"namespace": "file", "name": 3}]},
        {**good, "colour": "blue"},  # not in the spec
        {**good, "run": {**good["run"], "facets": {"imageCatalog_cost": {
            "_producer": "x", "_schemaURL": "https://example.invalid/s.json#/$defs/S"}}}},  # does not resolve
        {**good, "run": {**good["run"], "facets": {"parent": {
            "_producer": "x", "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": {"runId": "01a2335f-3dfd-7522-b3ca-cd1e47e8f0f1"}}}}},  # a parent without its job
    ]
    for event in bad:
        with pytest.raises(SpecError):
            validator.validate(event)


def test_every_operator_exposes_lineage_and_dag_parsing_stays_light():
    from airflow_image_catalog.operators.cost_check import CostCheckOperator
    from airflow_image_catalog.operators.discover import DiscoverImagesOperator
    from airflow_image_catalog.operators.image_edit import ImageEditOperator
    from airflow_image_catalog.operators.publish import PublishOperator
    from airflow_image_catalog.operators.quality_gate import QualityGateOperator
    from airflow_image_catalog.operators.review import QuarantineReviewOperator
    from airflow_image_catalog.sensors.new_images import NewImagesSensor

    for cls in (CostCheckOperator, DiscoverImagesOperator, ImageEditOperator, PublishOperator, QualityGateOperator,
                QuarantineReviewOperator, NewImagesSensor):
        for name in ("get_openlineage_facets_on_start", "get_openlineage_facets_on_complete",
                     "get_openlineage_facets_on_failure"):
            assert callable(getattr(cls, name)), (cls.__name__, name)
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]);"
            "loaded = [m for m in ('airflow_image_catalog.lineage.extract', 'airflow_image_catalog.lineage.facets') if m in sys.modules];"
            "print(loaded); sys.exit(1 if loaded else 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "catalog_refresh.py")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_source_operators_name_their_prefix(tmp_path):
    from airflow_image_catalog.operators.discover import DiscoverImagesOperator
    from airflow_image_catalog.sensors.new_images import NewImagesSensor

    discover = DiscoverImagesOperator(task_id="d", source="s3://photos/drop/", workspace=str(tmp_path))
    sensor = NewImagesSensor(task_id="s", source=str(tmp_path / "in"), published_manifest=None)
    start = discover.get_openlineage_facets_on_start()
    assert [(d.namespace, d.name) for d in start.inputs] == [("s3://photos", "drop")] and not start.outputs
    assert [(d.namespace, d.name) for d in sensor.get_openlineage_facets_on_failure(None).inputs] == [
        ("file", str(tmp_path / "in"))]


def test_a_failed_gate_still_reports_its_verdict_and_assertions(tmp_path):
    """The gate writes its manifest before failing the task: on_failure reads it like on_complete."""
    from types import SimpleNamespace

    from airflow_image_catalog.operators.quality_gate import QualityGateOperator
    from airflow_image_catalog.storage import join_uri, write_json

    workspace = str(tmp_path / "work")
    run_root = join_uri(workspace, "runs", "manual__1")
    edit_uri = write_json(join_uri(run_root, "edits", "chunk-00000.json"), {"run_key": "manual__1", "chunk_index": 0})
    write_json(join_uri(run_root, "quality", "chunk-00000.json"), GATE)
    gate = QualityGateOperator(task_id="q", edit_manifest_uri=edit_uri, workspace=workspace, min_pass_rate=0.8)

    lineage = gate.get_openlineage_facets_on_failure(SimpleNamespace(run_id="manual:1", map_index=0))
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", f"{tmp_path}/work/runs/manual__1/outputs")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", f"{tmp_path}/work/quarantine/manual__1")]
    assert lineage.run_facets["imageCatalog_quality"].quarantined == 2
    assert lineage.run_facets["imageCatalog_quality"].minPassRate == 0.8
    dq = lineage.inputs[0].inputFacets["dataQualityAssertions"]
    assert [(a.assertion, a.success, a.column) for a in dq.assertions][0] == ("product fills 80-87%", False,
                                                                               "product_fill")
    assert not gate.get_openlineage_facets_on_start().run_facets  # before running: datasets only


ROUTED_DECISION = {"action": "go", "policy": "fail", "estimate_usd": 0.5, "routing": {
    "plan": "file:///w/runs/r/routing/plan.json", "target": 0.9, "counts": {"lite": 7, "pro": 3}, "explored": 1,
    "expected": {"usd": 0.5, "pass_rate": 0.97, "usd_per_pass": 0.0515, "escalation_reserve_usd": 0.1}}}
ROUTED_REPORT = {"images": 10, "target": 0.9, "pass_rate": 1.0, "actual_usd_per_pass": 0.05,
                 "expected_usd_per_pass": 0.0515, "fixed_candidate": "standard", "fixed_usd_per_pass": 0.07,
                 "saving_vs_fixed": 0.2857, "saving_vs_strongest": 0.75,
                 "candidates": {"lite": {"routed": 7, "explored": 1}, "pro": {"routed": 3, "explored": 0}},
                 "escalations": {"attempted": 2, "passed": 2, "not_sent": 0}}


def test_a_routed_runs_cost_facet_carries_its_routing_and_matches_the_schema(validate_facet):
    from openlineage.client.serde import Serde

    from airflow_image_catalog.lineage.facets import ImageCatalogCostRunFacet

    planned = cost_fields(ROUTED_DECISION)["routing"]
    assert planned["candidates"] == {"lite": 7, "pro": 3} and planned["expectedUsdPerPass"] == 0.0515
    assert "actualUsdPerPass" not in planned  # not published yet: only the plan is known
    done = cost_fields(ROUTED_DECISION, routed=ROUTED_REPORT)["routing"]
    assert (done["escalations"], done["escalationsPassed"], done["savingVsFixed"]) == (2, 2, 0.2857)
    assert done["fixedCandidate"] == "standard" and done["actualUsdPerPass"] == 0.05
    for fields in (planned, done):
        validate_facet(Serde.to_dict(ImageCatalogCostRunFacet(**cost_fields(ROUTED_DECISION, routed=ROUTED_REPORT
                                                                            if fields is done else None))))
    assert cost_fields(ROUTED_DECISION, scope="chunk", images=2, cache_hits=0).get("routing") is None
