"""The Airflow UI plugin: catalog runs, cost, quality, review and audit inside the Airflow UI.

``CatalogPlugin`` (name ``image_catalog``) is registered through the ``airflow.plugins`` entry point
(``pip install`` is enough) and is also picked up from the plugins folder (``plugins/catalog_plugin.py``)
where the package is on the path but not installed. It brings:

* a FastAPI app at ``/image-catalog`` (:mod:`airflow_image_catalog.plugin.app`): the catalog page, run pages,
  the review queue and the audit search, server-rendered, behind Airflow's authentication;
* a navigation entry "Image catalog" (an external view that the UI embeds under ``/plugin/image-catalog``);
* the macro ``{{ macros.image_catalog.run_page_url(run_id) }}``.

The operators' extra links live in :mod:`airflow_image_catalog.links.run_page`. Importing this module is light (every
Airflow process imports plugins): FastAPI routes, DuckDB and the storage code load when the
api-server first mounts the app.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_image_catalog.links.run_page import PLUGIN_PREFIX, run_page_url

__all__ = ["CatalogPlugin"]


class _LazyApps:
    """``fastapi_apps`` built on first access (by the api-server only), then kept."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, instance: Any, owner: type) -> list[dict[str, Any]]:
        if self._apps is None:
            from airflow_image_catalog.plugin.app import create_app

            self._apps = [{"app": create_app(), "url_prefix": PLUGIN_PREFIX, "name": "Image catalog"}]
        return self._apps


class CatalogPlugin(AirflowPlugin):
    """Catalog runs, budget use, the review queue and the audit trail in the Airflow UI."""

    name = "image_catalog"
    fastapi_apps = _LazyApps()  # type: ignore[assignment]
    external_views = [  # noqa: RUF012 (Airflow's plugin interface is class-level lists)
        {
            "name": "Image catalog",
            "href": f"{PLUGIN_PREFIX}/",
            "url_route": "image-catalog",
            "destination": "nav",
            "category": "browse",
        },
    ]
    macros = [run_page_url]  # noqa: RUF012
