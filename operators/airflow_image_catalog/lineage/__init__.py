"""OpenLineage for the catalog pipeline: dataset naming, custom run facets, builders from manifests.

This package module is pure (no OpenLineage import), so operators can import it at DAG-parse
time; :mod:`airflow_image_catalog.lineage.facets` and :mod:`airflow_image_catalog.lineage.extract` import the
OpenLineage client and are only imported inside the operators' ``get_openlineage_facets_*``
methods.

Datasets are locations, not images: a run's edits are one dataset (``runs/<run>/outputs``),
not one per image, so the lineage graph stays readable for catalogs of thousands of photos.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from airflow_image_catalog.storage import normalize_uri

#: where the custom facets' JSON schemas are published (``schemas/<Name>.json`` in this package)
SCHEMA_BASE_URL = (
    "https://github.com/airflow-image-catalog/airflow-image-catalog/blob/main/operators/lineage/schemas/"
)


def schema_url(facet_name: str) -> str:
    """The ``_schemaURL`` of a custom facet: its published schema file and the facet's definition in it."""
    return f"{SCHEMA_BASE_URL}{facet_name}.json#/$defs/{facet_name}"


def dataset_for(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a location per the OpenLineage naming spec.

    ``s3://bucket/key`` -> (``s3://bucket``, ``key``) (``/`` for the bucket itself);
    ``file:///path`` or a plain path -> (``file``, ``/path``); other schemes keep
    ``scheme://authority`` as the namespace and the path as the name. Trailing slashes
    are dropped, so a prefix names the same dataset however it was written.
    """
    parts = urlsplit(normalize_uri(str(uri)))
    if parts.scheme == "file":
        path = unquote(parts.path).rstrip("/") or "/"
        return "file", path
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not a location URI: {uri!r}")
    key = parts.path.strip("/")
    return f"{parts.scheme}://{parts.netloc}", key or "/"
