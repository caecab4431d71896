"""``make demo``: run catalog_refresh once through Airflow and print where everything is.

Runs ``airflow dags test catalog_refresh`` (real scheduler-less run against the
SQLite Airflow home inside the repo), then reads the run report it wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from operators.runs import catalog_home as _catalog_home


def _path(uri: str) -> str:
    return unquote(urlsplit(uri).path) if uri.startswith("file://") else uri


def main() -> int:
    catalog_home = _catalog_home().resolve()
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    log_path = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "demo-run.log"
    started = time.time()
    print(f"running catalog_refresh through Airflow (log: {log_path}) ...", flush=True)
    with log_path.open("w") as log:
        proc = subprocess.run([airflow, "dags", "test", "catalog_refresh"], stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - started
    reports = [p for p in (catalog_home / "work" / "runs").glob("*/report.json") if p.stat().st_mtime >= started]
    if proc.returncode != 0 or not reports:
        print("".join(log_path.read_text().splitlines(keepends=True)[-60:]))
        print(f"catalog_refresh FAILED (exit {proc.returncode}); full log: {log_path}")
        return proc.returncode or 1
    report = json.loads(max(reports, key=lambda p: p.stat().st_mtime).read_text())
    counts = report["counts"]
    print()
    print(f"catalog_refresh run {report['run_id']}: recipe {report['recipe']['name']}, {', '.join(report['backends'])}")
    print(f"  images found {counts['found']} / edited {counts['edited']} / failed {counts['failed']} "
          f"/ quarantined {counts['quarantined']} / published {counts['published']}   "
          f"wall time {wall:.1f} s (edit time {report['edit_seconds']:.1f} s)")
    quality = report.get("quality")
    if quality and quality["pass_rate"] is not None:
        print(f"  quality gate ({', '.join(quality['profiles'])}): pass rate {quality['pass_rate']:.0%}, "
              f"{quality['quarantined']} quarantined")
    for failure in report["failures"]:
        print(f"  failed: {failure['image_id']}: {failure['error']}")
    print(f"  published images: {_path(report['published_root'])}")
    print(f"  run report:       {_path(report['report_html'])}")
    print(f"                    {_path(report['report_json'])}")
    for docs in (quality or {}).get("data_docs", []):
        print(f"  GX Data Docs:     {_path(docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
