"""catalog_watch: new images in the source trigger catalog_refresh with the same locations."""

from __future__ import annotations

import pytest

from tests.dags.test_catalog_refresh import REPO
from tests.fixtures.service import product_png

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_new_images_trigger_a_refresh(tmp_path):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun

    source = tmp_path / "drop"
    source.mkdir()
    (source / "new.png").write_bytes(product_png())
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    conf = {"source": str(source), "workspace": str(tmp_path / "work"), "published": str(tmp_path / "pub")}

    dagrun = bag.dags["catalog_watch"].test(run_conf=conf)

    assert dagrun.state == "success"
    states = {ti.task_id: ti.state for ti in dagrun.get_task_instances()}
    assert states == {"new_images": "success", "refresh": "success"}
    triggered = [r for r in DagRun.find(dag_id="catalog_refresh") if r.conf.get("source") == str(source)]
    assert len(triggered) == 1 and triggered[0].conf["workspace"] == conf["workspace"]
