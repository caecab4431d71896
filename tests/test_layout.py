"""The runtime package stands apart from its tooling: no runtime module imports
``airflow_image_catalog.tooling`` or a test library (static: every import statement, also those
inside functions). That the runtime imports without pytest and moto installed is shown in a fresh
virtualenv by ``tests/deploy/test_install_modes.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_image_catalog

ROOT = Path(airflow_image_catalog.__file__).parent
TOOLING = "airflow_image_catalog.tooling"
#: what only the tooling and the tests may import
TEST_ONLY = ("pytest", "moto", "hypothesis", "aiosmtpd", "playwright", "tests")


def runtime_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "tooling" not in p.relative_to(ROOT).parts)


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]  # from airflow_image_catalog import tooling
    return names


def test_no_runtime_module_imports_the_tooling_or_a_test_library():
    files = runtime_files()
    assert len(files) > 50 and not any("tooling" in str(p.relative_to(ROOT)) for p in files)
    offending = {}
    for path in files:
        bad = [name for name in imported_modules(path)
               if name == TOOLING or name.startswith(TOOLING + ".") or name.split(".")[0] in TEST_ONLY]
        if bad:
            offending[str(path.relative_to(ROOT))] = sorted(set(bad))
    assert offending == {}


def test_the_check_sees_imports_inside_functions(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from airflow_image_catalog import tooling\n    import pytest\n")
    assert {"airflow_image_catalog.tooling", "pytest"} <= set(imported_modules(module))
