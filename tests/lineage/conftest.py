"""Schema validation helpers for the lineage tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "operators" / "airflow_image_catalog" / "lineage" / "schemas"
#: the part of the OpenLineage spec the custom facets extend (no network in tests)
OPENLINEAGE_SPEC = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
    "$defs": {
        "BaseFacet": {"type": "object", "properties": {"_producer": {"type": "string", "format": "uri"},
                                                       "_schemaURL": {"type": "string", "format": "uri"}},
                      "required": ["_producer", "_schemaURL"]},
        "RunFacet": {"type": "object", "allOf": [{"$ref": "#/$defs/BaseFacet"}]},
    },
}


@pytest.fixture(scope="session")
def validate_facet():
    """Validate a serialised facet against the schema its ``_schemaURL`` names (a file in ``schemas/``)."""
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    resources = [Resource.from_contents(OPENLINEAGE_SPEC)]
    resources += [Resource.from_contents(json.loads(p.read_text())) for p in sorted(SCHEMAS.glob("*.json"))]
    registry = Registry().with_resources((r.id(), r) for r in resources)

    def validate(facet: dict[str, Any]) -> None:
        url = facet["_schemaURL"]
        jsonschema.Draft202012Validator({"$ref": url}, registry=registry).validate(facet)

    return validate
