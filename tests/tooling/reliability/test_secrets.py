"""The secrets scan: runs through the DAG with a key on every backend connection, then the keys are
searched for in everything the runs left behind: zero hits."""

from __future__ import annotations

import json

from airflow_image_catalog.tooling.reliability.runner import environment, run_scenario
from airflow_image_catalog.tooling.reliability.scenarios import SCAN_SCENARIOS, by_name
from airflow_image_catalog.tooling.reliability.secrets import (
    connections,
    make_keys,
    scan_files,
    scan_objects,
    scan_text,
    searched,
)


def test_no_key_anywhere_a_run_leaves_something(dag_lab, airflow_db, capfd):
    keys = make_keys()
    with environment(connections(keys, dag_lab.service.url)):
        results = [run_scenario(by_name(name), dag_lab) for name in SCAN_SCENARIOS]
    for result in results:
        assert result.ok, f"{result.name}: " + "\n".join(result.problems)
    needles = [*keys.values(), *(r.api_key for r in results)]
    prefixes = [p for r in results for p in (r.workspace, r.workspace.rsplit("/", 1)[0] + "/published")]
    captured = capfd.readouterr()
    hits = scan_files(airflow_db, needles) + [h for p in prefixes for h in scan_objects(p, needles)]
    hits += scan_text("task output", captured.out + captured.err, needles)
    assert hits == []
    assert searched(airflow_db, prefixes) > 50  # the DB, lineage events, manifests, state, ledger, reports, audit
    lineage = (airflow_db / "openlineage.jsonl").read_text()
    assert "catalog_refresh" in lineage  # the events file was written (and searched)


def test_trigger_kwargs_carry_no_key(service, monkeypatch):
    from airflow_image_catalog.triggers.edit_jobs import EditJobsTrigger

    keys = make_keys()
    for name, value in connections(keys, service.url).items():
        monkeypatch.setenv(name, value)
    trigger = EditJobsTrigger("scan_bfl", {"p0": {"id": "j1", "polling_url": f"{service.url}/v1/get_result?id=j1"}},
                              poll_interval=0.1, deadline=0.0, overrides={"max_attempts": 2})
    assert scan_text("trigger kwargs", json.dumps(trigger.serialize(), default=str), keys.values()) == []
