"""The fault matrix: every scenario at the chunk level (the edit task's own ``execute``), the fast ones
through the real DAG too. The same scenario and invariant code as ``make reliability``."""

from __future__ import annotations

import pytest

from airflow_image_catalog.tooling.reliability.runner import run_scenario
from airflow_image_catalog.tooling.reliability.scenarios import SCENARIOS, fast_scenarios


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_at_the_chunk_level(scenario, chunk_lab):
    result = run_scenario(scenario, chunk_lab)
    assert result.ok, "\n".join(result.problems + result.reasons)
    assert result.lost == 0
    # no duplicate charge where keys are honoured; where they are not (as real APIs may), each one is on the books
    assert result.duplicates == (0 if scenario.provider_idempotency else result.possibly_billed)
    assert scenario.provider_idempotency or result.duplicates > 0  # the scenario did pay twice at the service
    assert result.final.get("failed_retryable", 0) == 0


DAG_SCENARIOS = fast_scenarios()


@pytest.mark.parametrize("scenario", DAG_SCENARIOS, ids=[s.name for s in DAG_SCENARIOS])
def test_fast_scenarios_through_the_dag(scenario, dag_lab):
    result = run_scenario(scenario, dag_lab)
    assert result.ok, "\n".join(result.problems + result.reasons)
