"""Folder deployment: the layout managed Airflow services (MWAA, Cloud Composer, Astro) expect.

They take a DAGs folder, a plugins folder and a requirements file instead of an installed
package, and put the plugins folder on ``sys.path`` in every component. So the bundle is::

    OUT/dags/          catalog_refresh.py, catalog_review.py, catalog_watch.py, catalog_feed.py
    OUT/plugins/       the Airflow plugins (the UI plugin) + airflow_image_catalog/ (this package, importable
                       as ``airflow_image_catalog``) + .airflowignore (Airflow imports every .py file under the
                       plugins folder as a would-be plugin; the package must not be imported that way)
    OUT/requirements.txt   the package's dependencies, pinned by constraints.txt (Airflow itself is
                       the platform's: it is named in a comment, not installed)

``python -m airflow_image_catalog.tooling.bundle OUT`` (from a checkout) writes it. Without the package
installed, the ``apache_airflow_provider`` entry point is absent: everything runs, but
the ``image_edit`` connection type has no form in the UI (define connections by URI/JSON).
"""

from __future__ import annotations

import argparse
import configparser
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = "airflow_image_catalog"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
_PLATFORM = re.compile(r"^apache-airflow(\[.*\])?$")  # provided by the managed service


def requirements(setup_cfg: Path = REPO / "setup.cfg", constraints: Path = REPO / "constraints.txt") -> list[str]:
    """``install_requires`` of ``setup.cfg``, each pinned to its ``constraints.txt`` version where there is one."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[_normalize(name)] = version
    out = []
    for spec in parser["options"]["install_requires"].split("\n"):
        spec = spec.strip()
        if not spec:
            continue
        name = re.split(r"[<>=!~;\s]", spec, maxsplit=1)[0]
        if _PLATFORM.match(name):
            continue
        version = pins.get(_normalize(name.split("[")[0]))
        out.append(f"{name}=={version}" if version else spec)
    return out


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_bundle(out: Path, repo: Path = REPO) -> Path:
    """Lay out ``out`` for a folder deployment; returns it. ``out`` must not exist yet."""
    out.mkdir(parents=True)
    shutil.copytree(repo / "dags", out / "dags", ignore=_IGNORED)
    shutil.copytree(repo / "plugins", out / "plugins", ignore=_IGNORED)
    shutil.copytree(repo / "operators" / PACKAGE, out / "plugins" / PACKAGE, ignore=_IGNORED)
    (out / "plugins" / ".airflowignore").write_text(f"{PACKAGE}/\n")
    airflow = _airflow_requirement(repo / "setup.cfg")
    (out / "requirements.txt").write_text(
        f"# airflow-image-catalog as a folder deployment; the platform provides {airflow}\n"
        + "\n".join(requirements(repo / "setup.cfg", repo / "constraints.txt")) + "\n")
    return out


def _airflow_requirement(setup_cfg: Path) -> str:
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    specs = [s.strip() for s in parser["options"]["install_requires"].split("\n")]
    return next((s for s in specs if _PLATFORM.match(re.split(r"[<>=!~;\s]", s, maxsplit=1)[0])), "apache-airflow")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_image_catalog.tooling.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a folder that does not exist yet")
    args = parser.parse_args(argv)
    out = write_bundle(args.out)
    print(f"folder deployment in {out}: dags/, plugins/ (with airflow_image_catalog/), requirements.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
