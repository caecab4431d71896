"""Randomised chaos (seeded): random fault mixes and SIGKILLed edit task processes, reruns until done."""

from __future__ import annotations

from airflow_image_catalog.tooling.reliability.chaos import run_chaos


def test_a_few_chaos_runs_keep_every_invariant(service, tmp_path):
    from airflow_image_catalog.tooling.reliability.runner import Lab

    results = run_chaos(Lab(service, tmp_path, mode="chunk"), runs=3, seed=7)
    for result in results:
        assert result.ok, f"{result.name}: " + "\n".join(result.problems)
    assert sum("SIGKILL" in r.name and not r.name.endswith(" 0 SIGKILL") for r in results) >= 1
