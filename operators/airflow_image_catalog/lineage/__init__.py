"""OpenLineage for the catalog pipeline: dataset naming, custom run facets, builders from manifests.

This package module is pure (no OpenLineage import), so operators can import it at DAG-parse
time; :mod:`airflow_image_catalog.lineage.facets` and :mod:`airflow_image_catalog.lineage.extract` import the
OpenLineage client and are only imported inside the operators' ``get_openlineage_facets_*``
methods.

Datasets are locations, not images: a run's edits are one dataset (``runs/<run>/outputs``),
not one per image, so the lineage graph stays readable for catalogs of thousands of photos.

Custom facets follow the spec's naming (https://openlineage.io/docs/spec/facets/custom-facets and
``spec/OpenLineage.md``, "Custom Facet Naming"): classes ``{prefix}{name}{entity}Facet``, keys
``{prefix}_{name}``, prefix ``imageCatalog``. Their ``_schemaURL`` must be an immutable pointer to the
version of the schema: the schemas ship in this package under ``schemas/<version>/`` (a changed facet
gets a new version directory, never an edit) and the UI plugin serves them, without a session, at
``<base>/schemas/<version>/<Class>.json``, where ``<base>`` is ``[image_catalog] lineage_base_url`` or
else ``<[api] base_url>/image-catalog/lineage`` (``http://localhost:8080`` when unset, as Airflow's own
links assume). ``_producer`` (a URI naming the producer and its version, per the spec) is
``<base>/<package version>``, which the plugin answers with what this producer emits.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from airflow_image_catalog import __version__
from airflow_image_catalog.storage import normalize_uri

#: the version of the facet schemas the operators emit now (``schemas/<version>/`` in this package)
FACET_SCHEMA_VERSION = "1-1-0"
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
FACET_PREFIX = "imageCatalog"
#: where the plugin serves the schemas, below its mount point
LINEAGE_PATH = "/lineage"
DEFAULT_API_BASE_URL = "http://localhost:8080"  # Airflow's own fallback for absolute links ([api] base_url unset)


def facet_key(name: str) -> str:
    """The key a custom facet is emitted under: ``imageCatalog_<name>``."""
    return f"{FACET_PREFIX}_{name}"


def lineage_base_url() -> str:
    """``[image_catalog] lineage_base_url``, else the plugin's lineage path on the api-server."""
    from airflow.sdk import conf

    from airflow_image_catalog.links.run_page import PLUGIN_PREFIX

    explicit = conf.get("image_catalog", "lineage_base_url", fallback="") or ""
    if explicit.strip():
        return explicit.strip().rstrip("/")
    api = (conf.get("api", "base_url", fallback="") or DEFAULT_API_BASE_URL).rstrip("/")
    return f"{api}{PLUGIN_PREFIX}{LINEAGE_PATH}"


def schema_url(facet_class: str, version: str = FACET_SCHEMA_VERSION) -> str:
    """The ``_schemaURL`` of a custom facet: its versioned schema document and the definition in it."""
    return f"{lineage_base_url()}/schemas/{version}/{facet_class}.json#/$defs/{facet_class}"


def producer_url() -> str:
    """The ``_producer`` of the custom facets: this package, at its version."""
    return f"{lineage_base_url()}/{__version__}"


def schema_document(version: str, facet_class: str) -> bytes | None:
    """The shipped schema file of ``facet_class`` at ``version``, or None (no such version or facet)."""
    import re

    if not re.fullmatch(r"\d+-\d+-\d+", version) or not re.fullmatch(r"ImageCatalog[A-Za-z]+RunFacet", facet_class):
        return None
    path = SCHEMAS_DIR / version / f"{facet_class}.json"
    return path.read_bytes() if path.is_file() else None


def producer_document() -> dict[str, object]:
    """What ``_producer`` resolves to: the package, its version, the facets it emits and their schemas."""
    from airflow_image_catalog.lineage.facets import FACET_CLASSES

    return {"producer": "airflow-image-catalog", "version": __version__,
            "facets": {key: schema_url(cls.__name__) for key, cls in FACET_CLASSES.items()},
            "schemaVersions": sorted(p.name for p in SCHEMAS_DIR.iterdir() if p.is_dir())}


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
