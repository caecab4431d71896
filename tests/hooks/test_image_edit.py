from __future__ import annotations

import json

import pytest

from airflow_image_catalog.backends.local import LocalEngineBackend
from airflow_image_catalog.hooks.image_edit import ImageEditHook


def test_undefined_default_connection_means_the_local_engine(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_IMAGE_EDIT_DEFAULT", raising=False)
    backend = ImageEditHook().get_backend()
    assert isinstance(backend, LocalEngineBackend)
    assert backend.name == "local" and backend.model.startswith("local-engine/")


def test_connection_extras_configure_the_backend(monkeypatch):
    conn = {"conn_type": "image_edit", "extra": {"backend": "local", "max_pixels": 1000}}
    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_EDITS", json.dumps(conn))
    backend = ImageEditHook("catalog_edits").get_backend()
    assert backend.max_pixels == 1000


def test_unknown_backend_and_missing_named_connection_are_errors(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ODD", json.dumps({"conn_type": "image_edit", "extra": {"backend": "dalle9"}}))
    with pytest.raises(ValueError, match="unknown backend 'dalle9'"):
        ImageEditHook("odd").get_backend()
    with pytest.raises(Exception, match="not defined|isn't defined|not found"):
        ImageEditHook("no_such_connection").get_backend()


def test_provider_is_registered_through_its_entry_point():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_image_catalog")]
    info = entry.load()()
    assert info["package-name"] == "airflow-image-catalog"
    assert info["connection-types"][0]["hook-class-name"] == "airflow_image_catalog.hooks.image_edit.ImageEditHook"
    for group in ("operators", "hooks"):
        for module in info[group][0]["python-modules"]:
            __import__(module)
