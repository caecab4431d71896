"""catalog_refresh through ``dag.test()`` with the OpenLineage file transport: the emitted events."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_image_catalog.lineage import producer_url, schema_url
from tests.conftest import copy_samples
from tests.dags.test_catalog_refresh import _dag

pytestmark = pytest.mark.usefixtures("airflow_db")

SECRET = "sk-lineage-test-0123456789abcdef-NEVER-EMIT"
NAMESPACE = "catalog-lineage-test"
IMAGES = ("ball_red.png", "box_tea.jpg", "can_soda.jpg")


def _listener_managers() -> tuple[Any, Any]:
    """The listener managers dag.test() uses (core: DAG runs; task SDK: task instances)."""
    from airflow.listeners.listener import get_listener_manager as core
    from airflow.sdk.listener import get_listener_manager as sdk

    return core(), sdk()


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """Enable OpenLineage with a file transport for this test only.

    The provider's plugin decides when it is imported whether to register its listener, and a
    listener's adapter keeps its client. So the listener managers (and plugins) load first, with
    the session's settings; this test adds its own listener where none is registered, drops cached
    clients so the transport below is used, and leaves no listener of its own behind.
    """
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    def registered() -> list[tuple[Any, Any]]:
        return [(manager, plugin) for manager in _listener_managers() for plugin in manager.pm.get_plugins()
                if isinstance(plugin, OpenLineageListener)]

    before = registered()
    path = tmp_path / "ol.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", NAMESPACE)
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW_CONN_IMAGE_EDIT_DEFAULT", json.dumps(
        {"conn_type": "image_edit", "password": SECRET, "extra": {"backend": "local"}}))
    for manager in _listener_managers():
        if not any(m is manager for m, _ in before):
            manager.add_listener(OpenLineageListener())
    for _, listener in before:
        listener.adapter._client = None
    yield path
    for manager, listener in registered():
        if (manager, listener) in before:
            listener.adapter._client = None
        else:
            manager.pm.unregister(listener)


def _run(tmp_path: Path, source: Path, **conf: Any) -> Any:
    """``dag.test()`` of catalog_refresh without its deadline alert, which is not what this test is about
    (and which ``dag.test()`` on Airflow 3.3.2 fails to look up: ``'dict' object has no attribute 'hex'``)."""
    dag = _dag()
    dag.deadline = None
    return dag.test(run_conf={"source": str(source), "workspace": str(tmp_path / "work"),
                              "published": str(tmp_path / "published"), **conf})


def _events(path: Path, wait_for: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The emitted events; DAG-level events are emitted from a process pool, so wait for the last one."""
    deadline = time.monotonic() + timeout
    while True:
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        if any(e["job"]["name"] == wait_for for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_catalog_refresh_emits_lineage_with_datasets_facets_and_parents(tmp_path: Path, sample_set, lineage_file):
    source = copy_samples(sample_set, tmp_path / "source", IMAGES)
    dagrun = _run(tmp_path, source, chunk_size=2)
    assert dagrun.state == "success"
    events = _events(lineage_file, "catalog_refresh")
    text = lineage_file.read_text()
    assert SECRET not in text and SECRET[:20] not in text  # the edit connection's key never leaves the hook

    tasks = [e for e in events if e["job"]["name"].startswith("catalog_refresh.")]
    assert all(e["job"]["namespace"] == NAMESPACE for e in events)
    by_task: dict[str, dict[str, list[dict]]] = {}
    for event in tasks:
        by_task.setdefault(event["job"]["name"].split(".", 1)[1], {}).setdefault(event["eventType"], []).append(event)
    expected_instances = {"check_config": 1, "discover": 1, "rights_check": 1, "cost_check": 1, "edit": 2,
                          "quality_gate": 2, "escalate": 1, "publish": 1, "outcome": 1}
    assert {task: (len(kinds.get("START", [])), len(kinds.get("COMPLETE", []))) for task, kinds in by_task.items()} \
        == {task: (n, n) for task, n in expected_instances.items()}
    starts = {e["run"]["runId"] for e in tasks if e["eventType"] == "START"}
    assert starts == {e["run"]["runId"] for e in tasks if e["eventType"] == "COMPLETE"}  # one run per instance
    assert len(starts) == sum(expected_instances.values())

    # parent / child: every task run points at the DAG run, whose own events carry that run id
    dag_events = [e for e in events if e["job"]["name"] == "catalog_refresh"]
    assert dag_events and {e["eventType"] for e in dag_events} >= {"COMPLETE"}
    dag_run_ids = {e["run"]["runId"] for e in dag_events}
    assert len(dag_run_ids) == 1
    for event in tasks:
        parent = event["run"]["facets"]["parent"]
        # the parent's namespace is read once, when the provider's adapter module is imported
        assert parent["job"]["name"] == "catalog_refresh"
        assert {parent["run"]["runId"]} == dag_run_ids

    run_key = next((tmp_path / "work" / "runs").iterdir()).name
    work = str(tmp_path / "work")
    outputs = ("file", f"{work}/runs/{run_key}/outputs")

    def datasets(event: dict, side: str) -> list[tuple[str, str]]:
        return [(d["namespace"], d["name"]) for d in event.get(side, [])]

    complete = {task: kinds["COMPLETE"] for task, kinds in by_task.items()}
    start = {task: kinds["START"] for task, kinds in by_task.items()}
    assert datasets(start["discover"][0], "inputs") == [("file", str(source))]
    assert datasets(complete["cost_check"][0], "inputs") == [("file", str(source))]
    for event in start["edit"] + complete["edit"]:
        assert datasets(event, "inputs") == [("file", str(source))] and datasets(event, "outputs") == [outputs]
    for event in complete["quality_gate"]:
        assert datasets(event, "inputs") == [outputs]
        assert datasets(event, "outputs") == [("file", f"{work}/quarantine/{run_key}")]
    assert datasets(complete["publish"][0], "inputs") == [outputs]
    assert datasets(complete["publish"][0], "outputs") == [("file", str(tmp_path / "published"))]

    # the rights check: every image judged before any cost, counts only (no ids, no metadata)
    assert datasets(complete["rights_check"][0], "inputs") == [("file", str(source))]
    rights = complete["rights_check"][0]["run"]["facets"]["imageCatalog_rights"]
    assert rights["policy"] == "default" and rights["images"] == rights["go"] == len(IMAGES)
    assert rights["refused"] == rights["needsConsent"] == 0 and rights["peopleChecked"] == len(IMAGES)
    assert rights["_schemaURL"] == schema_url("ImageCatalogRightsRunFacet") and rights["_producer"] == producer_url()

    # the cost check's estimate (the local engine is free) and the run's actual cost
    cost = complete["cost_check"][0]["run"]["facets"]["imageCatalog_cost"]
    assert cost["scope"] == "run" and cost["currency"] == "USD" and cost["decision"] == "go"
    assert cost["images"] == len(IMAGES) and cost["estimate"] == 0 and cost["actual"] == 0
    assert complete["publish"][0]["run"]["facets"]["imageCatalog_cost"]["paidCalls"] == 0

    # the edit facet of each mapped instance: the chunk's counts, model, prompt hashes
    from airflow_image_catalog.recipes import load_recipe

    recipe = load_recipe("marketplace_white_square")
    hashes = [{"step": s.id, "sha256": hashlib.sha256(s.prompt.encode()).hexdigest()} for s in recipe.steps]
    edits = sorted((e["run"]["facets"]["imageCatalog_edit"] for e in complete["edit"]), key=lambda f: f["chunkIndex"])
    assert [f["images"] for f in edits] == [2, 1]
    for facet in edits:
        assert facet["backend"] == "local" and facet["model"].startswith("local-engine/")
        assert facet["recipe"] == recipe.name and facet["recipeFingerprint"] == recipe.fingerprint
        assert facet["prompts"] == hashes and facet["statusCounts"]["edited"] == facet["images"]
        assert facet["_schemaURL"] == schema_url("ImageCatalogEditRunFacet") and facet["_producer"] == producer_url()
    assert all(recipe_step.prompt not in text for recipe_step in recipe.steps)
    chunk_costs = [e["run"]["facets"]["imageCatalog_cost"] for e in complete["edit"]]
    assert all(c["scope"] == "chunk" and c["actual"] == 0 for c in chunk_costs)

    # the gate: quality facet per chunk, and the standard DQ assertions on its input dataset
    gates = sorted((e for e in complete["quality_gate"]), key=lambda e: e["run"]["facets"]["imageCatalog_quality"]["chunkIndex"])
    assert [g["run"]["facets"]["imageCatalog_quality"]["passed"] for g in gates] == [2, 1]
    for gate in gates:
        quality = gate["run"]["facets"]["imageCatalog_quality"]
        assert quality["suite"] == "amazon_main" and quality["quarantined"] == 0 and quality["passRate"] == 1.0
        assertions = gate["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
        assert assertions and all(a["success"] for a in assertions)
        assert all(a["assertion"] and a["column"] for a in assertions)


def _served_schemas():
    """Resolve a custom facet's ``_schemaURL`` the way a consumer would, against the UI plugin as the
    api-server mounts it (Airflow's own app, in process: no network)."""
    from urllib.parse import urlsplit

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app("core"))

    def fetch(url: str) -> dict[str, Any] | None:
        response = client.get(urlsplit(url).path)  # no session: schemas are public
        assert response.headers.get("cache-control", "").endswith("immutable") or response.status_code != 200
        return response.json() if response.status_code == 200 else None

    return client, fetch


def test_every_event_of_a_run_conforms_to_the_openlineage_spec(tmp_path: Path, sample_set, lineage_file):
    """A whole catalog_refresh run, validated offline: core model and standard facets through the official
    client's spec-generated classes, our facets against the schemas their _schemaURL resolves to."""
    from tests.lineage.openlineage_spec import EventValidator

    source = copy_samples(sample_set, tmp_path / "source", ("ball_red.png", "broken_upload.jpg"))
    assert _run(tmp_path, source).state == "success"
    events = _events(lineage_file, "catalog_refresh")
    client, fetch = _served_schemas()
    validator = EventValidator(fetch)
    for event in events:
        validator.validate(event)
    assert len(events) == 19  # 9 tasks x (START, COMPLETE) + the DAG run's COMPLETE
    ours = {k: v for k, v in validator.seen.items() if k.startswith("schema:")}
    assert ours == {"schema:ImageCatalogCostRunFacet": 3, "schema:ImageCatalogEditRunFacet": 1,
                    "schema:ImageCatalogQualityRunFacet": 1, "schema:ImageCatalogRightsRunFacet": 1}
    assert validator.seen["client:ParentRunFacet"] == 18 and validator.seen["client:DataQualityAssertionsDatasetFacet"] == 1
    custom = [f for e in events for k, f in e["run"]["facets"].items() if k.startswith("imageCatalog_")]
    assert custom and all(f["_producer"] == producer_url() for f in custom)
    producer = client.get(producer_url().removeprefix("http://localhost:8080"))
    assert producer.status_code == 200 and producer.json()["facets"]["imageCatalog_edit"] == schema_url(
        "ImageCatalogEditRunFacet")
    for refused in ("/image-catalog/lineage/schemas/9-9-9/ImageCatalogEditRunFacet.json",
                    "/image-catalog/lineage/schemas/1-0-0/..%2F..%2F..%2Fdags.json",
                    "/image-catalog/lineage/schemas/1-0-0/OpenLineage.json"):
        assert client.get(refused).status_code == 404, refused
