"""``python -m airflow_image_catalog.tooling.reliability [--fast]``: the reliability suite, as ``make reliability`` runs it.

Everything runs in a throwaway Airflow home (SQLite, migrated here) with the local edit service,
a moto S3 server and the S3 fault proxy on loopback, and prints:

1. the table: the bad-input corpus, every fault scenario through the real ``catalog_refresh`` DAG
   (``--fast``: every scenario at the chunk level, the fast ones through the DAG), the chaos runs;
2. the secrets scan over everything those runs left behind (keys on every backend connection);
3. the soak (full run only): N images through the DAG, peak RSS and wall time per N.

Task output (Airflow's logs) goes to ``<home>/run-output.log``, which the secrets scan searches too.
Exit status 1 when any row breaks an invariant or the scan finds a key.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the fast part (what make test runs)")
    parser.add_argument("--only", default="", help="only scenarios whose name contains this")
    parser.add_argument("--chaos", type=int, default=None, help="chaos runs (default 10; 2 with --fast)")
    parser.add_argument("--seed", type=int, default=2026, help="chaos seed")
    parser.add_argument("--soak", default=None, help="comma-separated image counts through the DAG (default "
                                                     "200,1000; none with --fast; 'none': skip)")
    parser.add_argument("--soak-edit", default=None, help="comma-separated image counts through the edit stage "
                                                          "alone (default 10000; none with --fast)")
    parser.add_argument("--chunk-size", type=int, default=500, help="soak chunk size")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (workspaces, Airflow home)")
    # the soak's child process
    parser.add_argument("--soak-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--service-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--soak-stage", default="dag", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def airflow_home(root: Path) -> dict[str, str]:
    """The environment of a throwaway Airflow home under ``root`` (lineage events to a file in it)."""
    from airflow_image_catalog.tooling.bench.throughput import airflow_env

    home = root / "airflow"
    return {**airflow_env(root), "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "append": True,
                                                          "log_file_path": str(home / "openlineage.jsonl")})}


@contextmanager
def captured(log: Path):
    """fds 1 and 2 into ``log`` for the block; yields a writer to the real stdout for progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda text: os.write(saved[0], (text + "\n").encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run(args: argparse.Namespace, root: Path) -> tuple[list[Any], dict[str, Any], int]:
    """Everything but the soak, inside the throwaway home: (results, scan figures, wall seconds)."""
    from airflow_image_catalog.tooling.reliability.chaos import run_chaos
    from airflow_image_catalog.tooling.reliability.corpus import corpus
    from airflow_image_catalog.tooling.reliability.runner import (
        Lab,
        S3Lab,
        environment,
        run_corpus,
        run_scenario,
    )
    from airflow_image_catalog.tooling.reliability.scenarios import SCENARIOS
    from airflow_image_catalog.tooling.reliability.secrets import (
        connections,
        make_keys,
        scan_files,
        scan_objects,
        searched,
    )
    from airflow_image_catalog.tooling.s3 import MotoServer, S3FaultProxy, s3_client
    from airflow_image_catalog.tooling.samples import product_png
    from airflow_image_catalog.tooling.service import editor
    from airflow_image_catalog.tooling.service.server import LocalEditService

    home = root / "airflow"
    started = time.perf_counter()
    editor.edit_pixels([product_png()], "warm up")
    keys = make_keys()
    results: list[Any] = []
    scenarios = [s for s in SCENARIOS if args.only.lower() in s.name.lower()]
    with LocalEditService(0) as service, MotoServer() as moto, S3FaultProxy(moto.url) as proxy, \
            environment(connections(keys, service.url)), captured(home / "run-output.log") as say:
        s3 = S3Lab(proxy, s3_client(moto.url))
        dag_lab, chunk_lab = Lab(service, root / "dag", s3, "dag"), Lab(service, root / "chunk", s3, "chunk")

        def record(result: Any) -> None:
            results.append(result)
            say(f"  {'ok ' if result.ok else 'NO '} {result.mode:5} {result.name} ({result.wall_s:.0f} s)"
                + "".join(f"\n        {p}" for p in result.problems))

        say("bad-input corpus")
        cases = corpus()
        record(run_corpus(chunk_lab, cases, backend="openai").result)
        record(run_corpus(dag_lab, cases, backend="local").result)
        say("fault matrix")
        for scenario in scenarios:
            if args.fast:
                record(run_scenario(scenario, chunk_lab))
            if scenario.fast or not args.fast:
                record(run_scenario(scenario, dag_lab))
        chaos = args.chaos if args.chaos is not None else (2 if args.fast else 10)
        if chaos:
            say(f"chaos: {chaos} runs, seed {args.seed}")
            for result in run_chaos(chunk_lab, chaos, seed=args.seed):
                record(result)
        say("secrets scan")
        needles = [*keys.values(), *(r.api_key for r in results)]
        prefixes = sorted({p for r in results for p in (r.workspace, r.workspace.rsplit("/", 1)[0] + "/published")})
        with environment(s3.environment()):
            hits = scan_files(home, needles) + [h for p in prefixes for h in scan_objects(p, needles)]
            scan = {"keys": len(needles), "searched": searched(home, prefixes), "hits": [h.__dict__ for h in hits]}
    return results, scan, round(time.perf_counter() - started)


def _counts(option: str | None, default: str) -> list[int]:
    """``--soak 200,1000`` -> [200, 1000]; ``none`` (or ``0``) -> no soak; unset -> ``default``."""
    text = default if option is None else option
    return [int(n) for n in text.split(",") if n.strip() not in ("", "0", "none")]


def soak(args: argparse.Namespace, root: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    from airflow_image_catalog.tooling.reliability.soak import run_soak
    from airflow_image_catalog.tooling.service.server import LocalEditService

    dag = _counts(args.soak, "" if args.fast else "200,1000")
    edit = _counts(args.soak_edit, "" if args.fast else "10000")
    log = root / "airflow" / "soak.log"
    with LocalEditService(0) as service:
        return (run_soak(dag, root, service, env, chunk_size=args.chunk_size, log=log)
                + run_soak(edit, root, service, env, chunk_size=args.chunk_size, log=log, stage="edit"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.soak_child is not None:
        from airflow_image_catalog.tooling.reliability.soak import soak_child, soak_edit_child

        child = soak_edit_child if args.soak_stage == "edit" else soak_child
        figures = child(args.soak_child, args.root, args.service_url, args.api_key, args.chunk_size)
        args.result.write_text(json.dumps(figures))
        return 0
    root = Path(tempfile.mkdtemp(prefix="catalog-reliability-"))
    env = airflow_home(root)
    os.environ.update(env)  # before anything imports Airflow
    (root / "airflow").mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    migrate = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    if migrate.returncode != 0:
        print(migrate.stdout[-2000:] + migrate.stderr[-2000:])
        return 1
    try:
        results, scan, wall = run(args, root)
        soaked = soak(args, root, env)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    from airflow_image_catalog.tooling.reliability.soak import render as render_soak
    from airflow_image_catalog.tooling.reliability.table import render_results

    print(render_results(results))
    print(f"\n{len(results)} rows, {sum(not r.ok for r in results)} breaking an invariant; lost "
          f"{sum(r.lost for r in results)}, duplicate charges {sum(r.duplicates for r in results)} (at a service "
          f"ignoring idempotency keys; booked possibly billed {sum(r.possibly_billed for r in results)}, silent "
          f"{sum(max(r.duplicates - r.possibly_billed, 0) for r in results)}); wall {wall} s")
    print(f"\nsecrets scan: {scan['keys']} keys (one per backend connection and per run) in {scan['searched']} "
          f"files and objects (Airflow home: metadata DB, task output, lineage events; workspaces: manifests, "
          f"state, ledger, reports, audit Parquet): {len(scan['hits'])} hits")
    for hit in scan["hits"]:
        print(f"  LEAK {hit['form']} key in {hit['where']}")
    if soaked:
        print("\nsoak (each N in a fresh process, through catalog_refresh):\n" + render_soak(soaked))
    for result in results:
        for problem in result.problems:
            print(f"  {result.name}: {problem}")
    if args.json:
        args.json.write_text(json.dumps({"results": [r.to_dict() for r in results], "scan": scan, "soak": soaked,
                                         "wall_s": wall}, indent=2, default=str))
    bad = any(not r.ok for r in results) or scan["hits"] or any(s.get("state") != "success" for s in soaked)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
