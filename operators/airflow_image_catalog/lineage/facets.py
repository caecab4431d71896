"""Custom OpenLineage run facets of the catalog pipeline (imports the OpenLineage client).

Each facet's JSON schema is ``schemas/<version>/<Class>.json`` beside this module (draft 2020-12,
extending the OpenLineage ``RunFacet``); ``_schemaURL`` points at the copy the UI plugin serves and
``_producer`` at this package's version there (see :mod:`airflow_image_catalog.lineage`). Classes and
keys follow the spec's custom facet naming: ``ImageCatalog<Name>RunFacet`` under ``imageCatalog_<name>``.
Field names are camelCase because the client serialises attribute names as they are.
Facets never carry secrets: backends, models and recipe names only, prompts as sha256.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.facet_v2 import RunFacet

from airflow_image_catalog.lineage import facet_key, producer_url, schema_url

#: the keys the facets are emitted under in ``run.facets``
EDIT_FACET, COST_FACET, QUALITY_FACET, RIGHTS_FACET = (facet_key("edit"), facet_key("cost"), facet_key("quality"),
                                                      facet_key("rights"))


@attr.define
class _CatalogRunFacet(RunFacet):
    """Our facets name us as their producer (the client's default is the event's producer, Airflow's)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._producer = producer_url()


@attr.define
class ImageCatalogEditRunFacet(_CatalogRunFacet):
    """What one edit task did: backend, model, recipe, prompt hashes and per-status image counts."""

    backend: str
    model: str
    recipe: str
    recipeFingerprint: str | None = None
    prompts: list[dict[str, str]] = attr.field(factory=list)  # [{"step": id, "sha256": hex}]
    images: int = 0
    statusCounts: dict[str, int] = attr.field(factory=dict)
    cacheHits: int = 0
    rounds: int = 0
    regenerations: int = 0
    attempts: int = 0
    chunkIndex: int | None = None

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ImageCatalogEditRunFacet")


@attr.define
class ImageCatalogCostRunFacet(_CatalogRunFacet):
    """What a run (or one chunk of it) was expected to cost and what the ledger says it cost."""

    scope: str  # "run" | "chunk"
    currency: str = "USD"
    estimate: float | None = None
    estimateLow: float | None = None
    estimateHigh: float | None = None
    actual: float | None = None
    decision: str | None = None
    policy: str | None = None
    limitedBy: str | None = None
    images: int | None = None
    cacheHits: int | None = None
    paidCalls: int = 0
    inputTokens: int = 0
    outputTokens: int = 0
    credits: float = 0.0
    #: a routed run: images per candidate, escalations, expected vs actual cost per passing image, the saving
    routing: dict[str, Any] | None = None

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ImageCatalogCostRunFacet")


@attr.define
class ImageCatalogQualityRunFacet(_CatalogRunFacet):
    """The quality gate's verdict for one chunk: suite (profile), pass / quarantine counts, pass rate."""

    suite: str
    suiteOrigin: str | None = None
    intent: str | None = None
    passed: int = 0
    quarantined: int = 0
    notGated: int = 0
    passRate: float | None = None
    minPassRate: float | None = None
    failedExpectations: dict[str, int] = attr.field(factory=dict)
    chunkIndex: int | None = None

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ImageCatalogQualityRunFacet")


@attr.define
class ImageCatalogRightsRunFacet(_CatalogRunFacet):
    """The rights check of a run: how many images may be edited, wait for consent or are refused, and why."""

    policy: str
    images: int = 0
    go: int = 0
    needsConsent: int = 0
    refused: int = 0
    withMetadata: int = 0
    peopleChecked: int = 0
    peopleFound: int = 0
    reasons: dict[str, int] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("ImageCatalogRightsRunFacet")


FACET_CLASSES: dict[str, Any] = {EDIT_FACET: ImageCatalogEditRunFacet, COST_FACET: ImageCatalogCostRunFacet,
                                 QUALITY_FACET: ImageCatalogQualityRunFacet, RIGHTS_FACET: ImageCatalogRightsRunFacet}
