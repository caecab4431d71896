"""``AirflowStack.stop`` ends what the services started, also what left their process groups.

The Task SDK's supervisor puts each task runner in a process group of its own, so signalling the
services' groups alone leaves a run's tasks behind when the stack is stopped mid-run (seen when
``make bench-scale`` was stopped: its running tasks outlived the stack). A stand-in service here
forks a grandchild that does what the supervisor does (``setpgid(0, 0)``) and sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from airflow_image_catalog.tooling.stack import AirflowStack, proc_stat

SERVICE = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)                      # as the Task SDK does for a task runner
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(300)
        os._exit(0)
    print(grandchild, flush=True)
    time.sleep(300)
    os._exit(0)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def test_stop_ends_processes_that_left_the_services_groups(tmp_path):
    service = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    grandchild = int(service.stdout.readline())
    deadline = time.monotonic() + 10
    while os.getpgid(grandchild) == service.pid and time.monotonic() < deadline:
        time.sleep(0.05)
    group = os.getpgid(grandchild)
    assert group != os.getpgid(service.pid)  # outside the service's group, as a task runner is
    stack = AirflowStack(tmp_path, base_env={})
    stack.procs["scheduler"], stack.pids["scheduler"] = service, service.pid
    try:
        stack.stop(timeout=5)
        deadline = time.monotonic() + 5
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(grandchild) and service.poll() is not None
    finally:
        if _alive(grandchild):
            os.killpg(group, 9)
