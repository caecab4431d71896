"""The demo's summary names where lineage really goes: the transport Airflow is configured with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_image_catalog.tooling.demo import lineage_destination


@pytest.fixture
def openlineage_env(monkeypatch):
    """Set ``[openlineage]`` through the environment; the provider caches what it read, so clear it."""
    from airflow.providers.openlineage import conf as ol_conf

    def configure(**values: str) -> None:
        for name in ("TRANSPORT", "DISABLED", "CONFIG_PATH"):
            monkeypatch.delenv(f"AIRFLOW__OPENLINEAGE__{name}", raising=False)
        monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
        for name, value in values.items():
            monkeypatch.setenv(f"AIRFLOW__OPENLINEAGE__{name.upper()}", value)
        for function in (ol_conf.transport, ol_conf.is_disabled, ol_conf.config_path):
            getattr(function, "cache_clear", lambda: None)()

    yield configure
    configure()


def test_lineage_destination_follows_the_configured_transport(tmp_path: Path, openlineage_env):
    events = tmp_path / "elsewhere" / "ol.jsonl"
    events.parent.mkdir()
    events.write_text('{"eventType": "START"}\n{"eventType": "COMPLETE"}\n')
    openlineage_env(transport=json.dumps({"type": "file", "log_file_path": str(events), "append": True}))
    assert lineage_destination() == f"{events} (OpenLineage file transport, 2 events so far)"
    openlineage_env(transport=json.dumps({"type": "http", "url": "http://marquez:5000/", "endpoint": "api/v1/lineage"}))
    assert lineage_destination() == "http://marquez:5000/api/v1/lineage (OpenLineage HTTP transport)"
    openlineage_env(transport=json.dumps({"type": "console"}), disabled="True")
    assert lineage_destination().startswith("none (OpenLineage is disabled")
