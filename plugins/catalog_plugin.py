"""Plugins-folder entry for the image catalog UI plugin (``airflow_image_catalog.plugin.CatalogPlugin``).

An installed package already registers the plugin through its ``airflow.plugins`` entry point;
exposing the class here as well would make Airflow load it twice and report the second copy as
an import error ("already registered"). So the class is only exposed when no entry point names it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.value.startswith("airflow_image_catalog.plugin") for ep in entry_points(group="airflow.plugins")):
    from airflow_image_catalog.plugin import CatalogPlugin

    __all__ = ["CatalogPlugin"]
