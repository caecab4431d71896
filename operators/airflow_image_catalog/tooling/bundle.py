"""Folder deployment: the layout managed Airflow services (MWAA, Cloud Composer, Astro) expect.

They take a DAGs folder, a plugins folder and a requirements file instead of an installed
package, and put the plugins folder on ``sys.path`` in every component. So the bundle is::

    OUT/dags/          catalog_refresh.py, catalog_review.py, catalog_consent.py, catalog_watch.py, catalog_feed.py
    OUT/plugins/       catalog_plugin.py (the UI plugin) + airflow_image_catalog/ (this package, importable
                       as ``airflow_image_catalog``) + .airflowignore (Airflow imports every .py file under the
                       plugins folder as a would-be plugin; the package must not be imported that way)
    OUT/requirements.txt   the package's dependencies, pinned by constraints.txt (Airflow itself is
                       the platform's: it is named in a comment, not installed)
    OUT/.airflow-image-catalog-bundle.json   what the bundle wrote (path -> sha256)

``OUT`` may be a deployment that already exists (a team's ``dags/``, ``plugins/operators/``,
...): the bundle merges into it, adds its line to an existing ``plugins/.airflowignore`` and
never overwrites a file it did not write. A re-run updates its own files (and removes the ones
a newer version no longer ships) but refuses, before writing anything, when a file in the way is
someone else's or was changed since the bundle wrote it; the error names the files.

``image-catalog-bundle OUT`` (or ``python -m airflow_image_catalog.tooling.bundle OUT``), run from a
checkout, writes it. Without the package
installed, the ``apache_airflow_provider`` entry point is absent: everything runs, but
the ``image_edit`` connection type has no form in the UI (define connections by URI/JSON).
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import re
import sys
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[3]
PACKAGE = "airflow_image_catalog"
MANIFEST = ".airflow-image-catalog-bundle.json"
IGNORE_FILE = "plugins/.airflowignore"
#: the .airflowignore line that keeps Airflow's plugin loader out of the package
IGNORE_LINE = f"{PACKAGE}/"
_SKIPPED = ("__pycache__",)
_PLATFORM = re.compile(r"^apache-airflow(\[.*\])?$")  # provided by the managed service


class BundleConflict(Exception):
    """Files in the way that the bundle did not write (or that changed since it did): nothing was written."""

    def __init__(self, out: Path, foreign: list[str], changed: list[str]):
        self.foreign, self.changed = foreign, changed
        parts = []
        if foreign:
            parts.append(f"not written by the bundle: {', '.join(foreign)}")
        if changed:
            parts.append(f"changed since the bundle wrote them: {', '.join(changed)}")
        super().__init__(f"{out}: refusing to overwrite {'; '.join(parts)}. Nothing was written; move or "
                         "remove these files (or merge them by hand) and run the bundle again.")


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


def _airflow_requirement(setup_cfg: Path) -> str:
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    specs = [s.strip() for s in parser["options"]["install_requires"].split("\n")]
    return next((s for s in specs if _PLATFORM.match(re.split(r"[<>=!~;\s]", s, maxsplit=1)[0])), "apache-airflow")


def _tree(root: Path, under: str) -> dict[str, bytes]:
    """Every file below ``root`` as ``under/relative`` -> bytes (no caches)."""
    return {str(PurePosixPath(under, *path.relative_to(root).parts)): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and not any(part in _SKIPPED for part in path.parts) and path.suffix != ".pyc"}


def bundle_files(repo: Path = REPO) -> dict[str, bytes]:
    """What the bundle owns, relative to ``OUT``: the DAGs, the plugin files, the package, requirements.txt."""
    if not (repo / "dags").is_dir() or not (repo / "operators" / PACKAGE).is_dir():
        raise FileNotFoundError(f"{repo} is not a checkout of airflow-image-catalog (no dags/ or operators/{PACKAGE}/)")
    files = {f"dags/{p.name}": p.read_bytes() for p in sorted((repo / "dags").glob("*.py"))}
    files |= {f"plugins/{p.name}": p.read_bytes() for p in sorted((repo / "plugins").glob("*.py"))}
    files |= _tree(repo / "operators" / PACKAGE, f"plugins/{PACKAGE}")
    airflow = _airflow_requirement(repo / "setup.cfg")
    files["requirements.txt"] = (
        f"# airflow-image-catalog as a folder deployment; the platform provides {airflow}\n"
        + "\n".join(requirements(repo / "setup.cfg", repo / "constraints.txt")) + "\n").encode()
    return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recorded(out: Path) -> dict[str, set[str]]:
    """path -> the sha256 values the bundle may find there (its last write; during a write, the one before too)."""
    path = out / MANIFEST
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    allowed: dict[str, set[str]] = {}
    for section in ("files", "previous"):
        for name, digest in manifest.get(section, {}).items():
            allowed.setdefault(name, set()).add(digest)
    return allowed


def _write_manifest(out: Path, files: dict[str, str], previous: dict[str, str] | None = None) -> None:
    body = {"package": PACKAGE, "files": dict(sorted(files.items()))}
    if previous:
        body["previous"] = dict(sorted(previous.items()))
    temp = out / f"{MANIFEST}.tmp"
    temp.write_text(json.dumps(body, indent=1) + "\n")
    temp.replace(out / MANIFEST)


def _merged_ignore(current: str | None) -> str | None:
    """``plugins/.airflowignore`` with the bundle's line added (None: already there)."""
    lines = (current or "").splitlines()
    if IGNORE_LINE in (line.strip() for line in lines):
        return None
    return "\n".join([*lines, IGNORE_LINE]) + "\n"


def plan(out: Path, repo: Path = REPO) -> tuple[dict[str, bytes], list[str]]:
    """What a bundle run would write into ``out`` and which of its old files it would remove.

    :raises BundleConflict: a file in the way that is not the bundle's, or was changed since it wrote it.
    """
    files = bundle_files(repo)
    recorded = _recorded(out)
    foreign, changed = [], []
    for name in files:
        target = out / name
        for parent in PurePosixPath(name).parents:  # a file where the bundle needs a folder
            if str(parent) != "." and (out / parent).is_file():
                foreign.append(str(parent))
        if target.is_dir():
            foreign.append(f"{name}/")
        elif target.exists():
            if name not in recorded:
                foreign.append(name)
            elif _sha256(target.read_bytes()) not in recorded[name]:
                changed.append(name)
    stale = [name for name in recorded if name not in files and (out / name).is_file()]
    changed += [name for name in stale if _sha256((out / name).read_bytes()) not in recorded[name]]
    if foreign or changed:
        raise BundleConflict(out, sorted(set(foreign)), sorted(changed))
    return files, sorted(stale)


def write_bundle(out: Path, repo: Path = REPO) -> Path:
    """Lay out (or update) ``out`` for a folder deployment; returns it. See the module docstring."""
    out.mkdir(parents=True, exist_ok=True)
    files, stale = plan(out, repo)
    digests = {name: _sha256(data) for name, data in files.items()}
    before = {name: _sha256((out / name).read_bytes()) for name in [*files, *stale] if (out / name).is_file()}
    _write_manifest(out, digests, previous=before)  # first: an interrupted run can be re-run
    for name, data in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.bundle-tmp")
        temp.write_bytes(data)
        temp.replace(target)
    for name in stale:
        (out / name).unlink()
    ignore = out / IGNORE_FILE
    merged = _merged_ignore(ignore.read_text() if ignore.exists() else None)
    if merged is not None:
        ignore.write_text(merged)
    _write_manifest(out, digests)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image-catalog-bundle", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the deployment folder (new, or one the bundle merges into)")
    args = parser.parse_args(argv)
    try:
        out = write_bundle(args.out)
    except (BundleConflict, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"folder deployment in {out}: dags/, plugins/ (with {PACKAGE}/), requirements.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
