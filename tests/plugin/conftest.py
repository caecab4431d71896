"""One real catalog_refresh run (through ``dag.test()``) shared by the plugin's tests.

A strict quality profile quarantines every edit and ``broken_upload.jpg`` fails, so the catalog page,
the review queue and the audit trail all have something to show; budgets are set so the page's
gauges have a limit to measure against (the local engine spends $0).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_samples, write_strict_profile

SAMPLES = ("ball_red.png", "can_soda.jpg", "jar_honey.png", "broken_upload.jpg")


@dataclass
class CatalogRun:
    """Where the shared run left its state."""

    root: Path
    source: Path
    workspace: Path
    published: Path
    run_id: str
    run_key: str
    report: dict

    def env(self) -> dict[str, str]:
        """The plugin's configuration for this run's storage."""
        return {"AIRFLOW__IMAGE_CATALOG__WORKSPACE": str(self.workspace),
                "AIRFLOW__IMAGE_CATALOG__PUBLISHED": str(self.published),
                "AIRFLOW__IMAGE_CATALOG__SOURCES": f"source={self.source}"}


@pytest.fixture(scope="session")
def catalog_run(airflow_db, sample_set, tmp_path_factory) -> CatalogRun:
    from airflow.dag_processing.dagbag import DagBag

    root = tmp_path_factory.mktemp("plugin-catalog")
    source = copy_samples(sample_set, root / "source", SAMPLES)
    strict = write_strict_profile(root / "strict.yaml")
    bag = DagBag(dag_folder=str(REPO / "dags" / "catalog_refresh.py"))
    assert not bag.import_errors, bag.import_errors
    dagrun = bag.dags["catalog_refresh"].test(run_conf={
        "source": str(source), "workspace": str(root / "work"), "published": str(root / "published"),
        "quality_profile": str(strict), "min_pass_rate": 0.0, "budget_day_usd": 5.0, "budget_month_usd": 50.0})
    assert dagrun.state == "success"
    (report_path,) = (root / "work" / "runs").glob("*/report.json")
    return CatalogRun(root, source, root / "work", root / "published", dagrun.run_id, report_path.parent.name,
                      json.loads(report_path.read_text()))


@pytest.fixture
def fresh_workspace(catalog_run: CatalogRun, tmp_path: Path) -> CatalogRun:
    """A private copy of the shared run's storage, for tests that record decisions."""
    copy = CatalogRun(**{**catalog_run.__dict__, "root": tmp_path, "workspace": tmp_path / "work",
                         "published": tmp_path / "published"})
    shutil.copytree(catalog_run.workspace, copy.workspace, symlinks=True)
    copy.published.mkdir()
    # records, manifests and the report name files by absolute URI: point them at the copy
    for path in copy.workspace.rglob("*.json"):
        text = path.read_text()
        if str(catalog_run.workspace) in text:
            path.write_text(text.replace(str(catalog_run.workspace), str(copy.workspace)))
    return copy
