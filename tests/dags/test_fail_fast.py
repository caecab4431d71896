"""Configuration mistakes fail the run in its first task, in seconds, with the field named and no retries.

Before ``check_config`` an unknown recipe, a missing source folder and a malformed recipe file each failed
only in ``discover``, after two retries with back-off (208-382 s), and a misspelt conf key was ignored.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.dags.test_catalog_refresh import _dag

pytestmark = pytest.mark.usefixtures("airflow_db")


def _task_states(dagrun) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in dagrun.get_task_instances()}


@pytest.mark.parametrize("mistake, says", [
    ({"sourc": "/photos"}, "sourc: not a parameter of this DAG (did you mean 'source'?)"),
    ({"recipe": "marketplace_white_squar"}, "recipe: recipe 'marketplace_white_squar' is neither a shipped recipe"),
    ({"source": "{tmp}/no-such-folder"}, "source: {tmp}/no-such-folder does not exist"),
    ({"recipe": "{tmp}/broken.yaml"}, "recipe: broken.yaml: not valid YAML/JSON"),
    ({"quality_profile": "amazon_mian"}, "quality_profile: "),
    ({"budget_run_usd": -5}, None),  # refused by the param's schema at trigger time (minimum 0)
])
def test_a_configuration_mistake_fails_first_by_name(tmp_path: Path, capfd, mistake, says):
    (tmp_path / "broken.yaml").write_text("version: 1\nname: broken\nsteps: [\n")
    (tmp_path / "source").mkdir()
    conf = {"source": str(tmp_path / "source"), "workspace": str(tmp_path / "work"),
            "published": str(tmp_path / "published")}
    conf.update({k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in mistake.items()})
    started = time.monotonic()
    if says is None:
        from airflow.sdk.definitions.param import ParamValidationError

        with pytest.raises(ParamValidationError, match="budget_run_usd"):
            _dag().test(run_conf=conf)
        return
    dagrun = _dag().test(run_conf=conf)
    elapsed = time.monotonic() - started
    states = _task_states(dagrun)
    assert str(dagrun.state) == "failed"
    assert states["check_config"] == ("failed", 1)  # once: no retries
    assert all(state == "upstream_failed" for task, (state, _) in states.items() if task != "check_config"), states
    out, err = capfd.readouterr()
    assert says.format(tmp=tmp_path) in out + err
    print(f"failed in {elapsed:.1f} s: {says}")  # a figure, not a timer: the machine may be busy
    assert not (tmp_path / "work" / "runs").exists()  # nothing listed, written or paid


@pytest.mark.parametrize("extra, recipe_prompt, says", [
    # Recraft takes at most 1,000 bytes of prompt (its API reference): 501 x "é" is 1,002 bytes
    ({"backend": "recraft"}, "\u00e9" * 501,
     "recipe: recipe 'wordy' step 'bg' field 'prompt' has 1,002 bytes; recraft accepts at most 1,000"),
    ({"backend": "recraftt"}, "Pure white background.",
     "backend_conn_id: connection 'catalog_edits': unknown backend 'recraftt'"),
])
def test_a_recipe_or_connection_the_backend_would_refuse_fails_first(tmp_path: Path, capfd, monkeypatch,
                                                                      extra, recipe_prompt, says):
    """Found by building the connection's backend (which sends nothing), before any image is listed or paid."""
    import json

    monkeypatch.setenv("AIRFLOW_CONN_CATALOG_EDITS", json.dumps(
        {"conn_type": "image_edit", "host": "http://127.0.0.1:9", "password": "rc-key", "extra": extra}))
    (tmp_path / "wordy.yaml").write_text(json.dumps({"version": 1, "name": "wordy", "output": {"format": "png"},
                                                     "steps": [{"id": "bg", "prompt": recipe_prompt, "mask": "background",
                                                                "local": {"op": "white_background"}}]}))
    (tmp_path / "source").mkdir()
    conf = {"source": str(tmp_path / "source"), "workspace": str(tmp_path / "work"),
            "published": str(tmp_path / "published"), "recipe": str(tmp_path / "wordy.yaml"),
            "backend_conn_id": "catalog_edits"}
    dagrun = _dag().test(run_conf=conf)
    states = _task_states(dagrun)
    assert str(dagrun.state) == "failed" and states["check_config"] == ("failed", 1)
    out, err = capfd.readouterr()
    assert says in out + err and "rc-key" not in out + err
    assert not (tmp_path / "work" / "runs").exists()
