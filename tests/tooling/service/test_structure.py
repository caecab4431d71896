"""The local edit service's modules: each imports only what another makes public, and none imports
back a module that imports it (app -> routes -> state / protocol, never the other way)."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_image_catalog.tooling.service as service

PACKAGE = "airflow_image_catalog.tooling.service"
FOLDER = Path(service.__file__).parent


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """module -> [(imported module of the service, names taken from it)], top-level and in functions alike."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(FOLDER.glob("*.py")):
        module = f"{PACKAGE}.{path.stem}"
        found[module] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:  # from ...service import editor
                found[module] += [(f"{PACKAGE}.{a.name}", []) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
                found[module].append((node.module, [a.name for a in node.names]))
    return found


def test_no_module_imports_another_modules_private_names():
    private = [(module, target, name) for module, imports in _imports().items() for target, names in imports
               for name in names if name.startswith("_") and target != module]
    assert private == []


def test_the_modules_import_each_other_without_cycles():
    graph = {module: {target for target, _ in imports if target in _imports()} for module, imports in _imports().items()}
    assert graph[f"{PACKAGE}.batches"] and graph[f"{PACKAGE}.bfl"]  # the walk sees the imports
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in graph.get(module, ()):
            visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
