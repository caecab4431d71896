"""Default catalog locations: local folders, or object storage when ``$CATALOG_HOME`` is a URI."""

from __future__ import annotations

from pathlib import Path

from airflow_image_catalog.config.locations import catalog_location


def test_local_catalog_home_gives_folders(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CATALOG_HOME", str(tmp_path))
    assert catalog_location("work") == str(tmp_path / "work")


def test_uri_catalog_home_keeps_state_in_object_storage(monkeypatch):
    monkeypatch.setenv("CATALOG_HOME", "s3://catalog-bucket/prod/")
    assert catalog_location("published") == "s3://catalog-bucket/prod/published"


def test_dag_defaults_follow_catalog_home(monkeypatch):
    """A deployment's scheduled runs (no conf) use object storage when CATALOG_HOME says so."""
    import importlib.util

    monkeypatch.setenv("CATALOG_HOME", "s3://catalog-bucket/prod")
    path = Path(__file__).resolve().parents[2] / "dags" / "catalog_refresh.py"
    spec = importlib.util.spec_from_file_location("catalog_refresh_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = module.dag.params
    assert (params["source"], params["workspace"], params["published"]) == (
        "s3://catalog-bucket/prod/samples", "s3://catalog-bucket/prod/work", "s3://catalog-bucket/prod/published")
