"""A rights sidecar: the rights a catalog keeps in its PIM, one row per image id, beside the images.

CSV (a header row) or JSON (a list of objects, or an object keyed by image id). Columns, all but
``image_id`` optional; lists are ``;``-separated in CSV, arrays in JSON:

==========================  ====================================================================
``image_id``                the catalog's image id (the source key without its extension)
``licence``                 licence id, or its URL (a URL is also the web statement of rights)
``licence_expires``         ``YYYY-MM-DD``: the licence ends after this day; past it the image is refused
``allowed_uses``            what the licence allows (e.g. ``ai_edit; marketplace``); when given, the
                            run's use (the policy's ``use``, default ``ai_edit``) must be among them
``model_release_ids``       releases on record for the people shown
``property_release_ids``    releases on record for the property shown
``category``                product category (a policy can require a property release for some)
``copyright_notice``, ``creator``, ``credit``, ``licensor``, ``usage_terms``, ``web_statement``,
``model_release_status``, ``property_release_status``, ``data_mining``   as in IPTC (see metadata.py)
==========================  ====================================================================

The sidecar is the system of record: where it and the embedded metadata both say something, the
sidecar wins. Bad input fails fast with the row and the column named.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

from airflow_image_catalog.pipeline.rights.metadata import (
    Licensor,
    RightsMetadata,
    RightsMetadataError,
    vocab_code,
)
from airflow_image_catalog.storage import read_bytes

LIST_COLUMNS = ("creator", "allowed_uses", "model_release_ids", "property_release_ids")
COLUMNS = ("image_id", "licence", "licence_expires", "allowed_uses", "model_release_ids", "property_release_ids",
           "category", "copyright_notice", "creator", "credit", "licensor", "usage_terms", "web_statement",
           "model_release_status", "property_release_status", "data_mining")


class SidecarError(RightsMetadataError):
    """The rights sidecar is malformed; the message names the file, the row and the column."""


def _values(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    items = value if isinstance(value, list) else str(value).split(";")
    return tuple(v for v in (str(item).strip() for item in items) if v)


def _row(origin: str, where: str, row: dict[str, Any]) -> tuple[str, RightsMetadata]:
    unknown = sorted(set(row) - set(COLUMNS))
    if unknown:
        raise SidecarError(f"{origin}: {where}: unknown column {unknown[0]!r} (allowed: {', '.join(COLUMNS)})")
    image_id = str(row.get("image_id") or "").strip()
    if not image_id:
        raise SidecarError(f"{origin}: {where}: image_id: missing")
    text = {k: (str(v).strip() or None) if v is not None and not isinstance(v, list) else None
            for k, v in row.items()}
    expires = text.get("licence_expires")
    if expires:
        try:
            expires = date.fromisoformat(expires[:10]).isoformat()
        except ValueError:
            raise SidecarError(f"{origin}: {where}: licence_expires: not a YYYY-MM-DD date: {expires!r}") from None
    licence = text.get("licence")
    web_statement = text.get("web_statement") or (licence if licence and "://" in licence else None)
    rights = RightsMetadata(
        copyright_notice=text.get("copyright_notice"), creators=_values(row.get("creator")),
        credit=text.get("credit"), licensors=(Licensor(name=text["licensor"]),) if text.get("licensor") else (),
        web_statement=web_statement, usage_terms=text.get("usage_terms"),
        model_release_status=vocab_code(text.get("model_release_status")),
        model_release_ids=_values(row.get("model_release_ids")),
        property_release_status=vocab_code(text.get("property_release_status")),
        property_release_ids=_values(row.get("property_release_ids")),
        data_mining=vocab_code(text.get("data_mining")), license_end_date=expires, licence=licence,
        allowed_uses=tuple(use.lower() for use in _values(row.get("allowed_uses"))),
        category=(text.get("category") or "").lower() or None, found_in=("sidecar",),
    )
    return image_id, rights


def parse_sidecar(data: bytes, *, origin: str = "<sidecar>") -> dict[str, RightsMetadata]:
    """Image id -> the rights the sidecar records (JSON when it starts with ``[`` or ``{``, else CSV)."""
    text = data.decode("utf-8-sig")
    rows: list[tuple[str, dict[str, Any]]]
    if text.lstrip()[:1] in ("[", "{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SidecarError(f"{origin}: not valid JSON: {exc}") from None
        if isinstance(loaded, dict):
            loaded = [{"image_id": key, **(value or {})} for key, value in loaded.items()]
        if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
            raise SidecarError(f"{origin}: expected a list of objects or an object keyed by image id")
        rows = [(f"[{i}]", item) for i, item in enumerate(loaded)]
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "image_id" not in reader.fieldnames:
            raise SidecarError(f"{origin}: the CSV header must name an image_id column")
        rows = [(f"row {i}", {k: v for k, v in item.items() if k is not None}) for i, item in enumerate(reader, 2)]
    records: dict[str, RightsMetadata] = {}
    for where, row in rows:
        image_id, rights = _row(origin, where, row)
        if image_id in records:
            raise SidecarError(f"{origin}: {where}: image_id: {image_id!r} appears twice")
        records[image_id] = rights
    return records


def load_sidecar(uri: str | None) -> dict[str, RightsMetadata]:
    """The sidecar at ``uri`` (a path or URI); an empty mapping for none."""
    if not uri:
        return {}
    return parse_sidecar(read_bytes(uri), origin=uri.rsplit("/", 1)[-1])
