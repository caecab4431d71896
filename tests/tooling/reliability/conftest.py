"""Fixtures of the reliability suite: a :class:`~airflow_image_catalog.tooling.reliability.runner.Lab` over the session's
edit service and S3 fault proxy (the same objects the rest of the suite uses)."""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.reliability.runner import Lab, S3Lab
from tests.fixtures.s3 import s3_client


@pytest.fixture
def s3_lab(s3_fault_proxy, moto_server) -> S3Lab:
    s3_fault_proxy.reset()
    yield S3Lab(s3_fault_proxy, s3_client(moto_server.url))
    s3_fault_proxy.reset()


@pytest.fixture
def chunk_lab(service, s3_lab, tmp_path) -> Lab:
    """Scenarios at the chunk level: each chunk through ``ImageEditOperator.execute``."""
    return Lab(service, tmp_path, s3_lab, mode="chunk")


@pytest.fixture
def dag_lab(service, s3_lab, tmp_path, airflow_db) -> Lab:
    """Scenarios through the real ``catalog_refresh`` DAG (``dag.test()``)."""
    return Lab(service, tmp_path, s3_lab, mode="dag")
