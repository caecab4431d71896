"""Installed as ``airflow_local_settings.py`` in the real-services test's Airflow home.

A cluster policy gives every task execution its own empty working and temporary
directory (``cwd``, ``TMPDIR``, ``tempfile.tempdir``) under ``$CATALOG_TASK_DIRS``, as
separate workers would have, and leaves a ``task.json`` there naming the task and process.
A task that read a file another task left on local disk would find nothing: the only
thing tasks share is object storage and the manifest URIs in XCom.
"""

from __future__ import annotations

import json
import os
import tempfile


def _isolate(context) -> None:
    ti = context["ti"]
    root = os.environ["CATALOG_TASK_DIRS"]
    os.makedirs(root, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"{ti.task_id}-{ti.map_index}-", dir=root)
    os.environ["TMPDIR"] = workdir
    tempfile.tempdir = workdir
    os.chdir(workdir)
    with open(os.path.join(workdir, "task.json"), "w") as f:
        json.dump({"task_id": ti.task_id, "map_index": ti.map_index, "run_id": ti.run_id,
                   "try_number": ti.try_number, "pid": os.getpid()}, f)


def task_policy(task) -> None:
    """Runs wherever the DAG is parsed; the callback only acts inside a task's process, before ``execute``."""
    task.on_execute_callback = [*(task.on_execute_callback or []), _isolate]
