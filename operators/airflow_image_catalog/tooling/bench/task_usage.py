"""Installed as ``airflow_local_settings.py`` by ``make bench-scale``: what each task process used.

A cluster policy adds success and failure callbacks to every task; they run in the task's own
process after ``execute`` and write its peak RSS (``ru_maxrss``) and CPU time to
``$CATALOG_TASK_USAGE/<pid>.json`` (with its run, task, map index and try). Nothing else changes.
"""

from __future__ import annotations

import json
import os
import resource
import time


def _record(context) -> None:
    ti = context["ti"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    folder = os.environ["CATALOG_TASK_USAGE"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{os.getpid()}.json"), "w") as f:
        json.dump({"run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index, "try_number": ti.try_number,
                   "max_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
                   "pid": os.getpid(), "at": time.time()}, f)


def task_policy(task) -> None:
    """Runs wherever the DAG is parsed; the callbacks act only in a task's process, after ``execute``."""
    task.on_success_callback = [*_as_list(task.on_success_callback), _record]
    task.on_failure_callback = [*_as_list(task.on_failure_callback), _record]


def _as_list(callbacks) -> list:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]
