"""Schema validation helpers for the lineage tests (no network: see ``openlineage_spec``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_image_catalog.lineage import FACET_SCHEMA_VERSION, SCHEMAS_DIR

SCHEMAS = SCHEMAS_DIR / FACET_SCHEMA_VERSION


@pytest.fixture(scope="session")
def validate_facet():
    """Validate a serialised custom facet against the shipped schema its ``_schemaURL`` names."""
    pytest.importorskip("jsonschema")
    from tests.lineage.openlineage_spec import validate_against

    def validate(facet: dict[str, Any]) -> None:
        document_url, _, fragment = facet["_schemaURL"].partition("#")
        name = Path(document_url).stem
        assert fragment == f"/$defs/{name}" and document_url.endswith(f"/{FACET_SCHEMA_VERSION}/{name}.json")
        validate_against(json.loads((SCHEMAS / f"{name}.json").read_text()), name, facet, name, document_url)

    return validate
