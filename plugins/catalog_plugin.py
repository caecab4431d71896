"""Plugins-folder entry for the image catalog UI plugin (``operators.plugin.CatalogPlugin``).

An installed package already registers the plugin through its ``airflow.plugins`` entry point;
exposing the class here as well would make Airflow load it twice and report the second copy as
an import error ("already registered"). So the class is only exposed when no entry point names it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value.startswith("operators.plugin") for ep in entry_points(group="airflow.plugins")):
    from operators.plugin import CatalogPlugin

    __all__ = ["CatalogPlugin"]
