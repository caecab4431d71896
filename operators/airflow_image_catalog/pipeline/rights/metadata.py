"""The rights a source image carries: IPTC Photo Metadata read from its XMP packet and IPTC-IIM block,
and written back (with our provenance) into what we publish.

The fields and where they live are the IPTC Photo Metadata Standard's (2025.1, its TechReference at
iptc.org/std/photometadata/specification/, XMP ids and IIM datasets):

=========================  ================================================  ==============
field                      XMP property                                      IIM dataset
=========================  ================================================  ==============
Copyright Notice           ``dc:rights`` (lang alt)                          2:116
Creator                    ``dc:creator`` (seq)                              2:80 By-line
Credit Line                ``photoshop:Credit``                              2:110
Copyright Owner            ``plus:CopyrightOwner`` / ``plus:CopyrightOwnerName``
Licensor                   ``plus:Licensor`` / ``plus:LicensorName``, ``LicensorID``, ``LicensorURL``
Web Statement of Rights    ``xmpRights:WebStatement``
Rights Usage Terms         ``xmpRights:UsageTerms`` (lang alt)
Model Release Status / Id  ``plus:ModelReleaseStatus`` (MR-NON, MR-NAP, MR-UMR, MR-LMR) / ``plus:ModelReleaseID``
Property Release ...       ``plus:PropertyReleaseStatus`` (PR-NON, PR-NAP, PR-UPR, PR-LPR) / ``plus:PropertyReleaseID``
Data Mining                ``plus:DataMining`` (PLUS vocabulary DMI-*, since 2023.1)
Other Constraints          ``plus:OtherConstraints`` (lang alt; what DMI-PROHIBITED-SEECONSTRAINT points at)
Digital Source Type        ``Iptc4xmpExt:DigitalSourceType``
Keywords                   ``dc:subject`` (bag)                              2:25
=========================  ================================================  ==============

plus ``plus:LicenseEndDate`` from the PLUS License Data Format. Controlled values are PLUS
vocabulary URIs (``http://ns.useplus.org/ldf/vocab/MR-NON``); they are stored as their code.
Where XMP and IIM both carry a field, XMP wins (the IPTC/MWG rule for files whose IIM is a legacy
copy); IIM fills what XMP lacks. Container walking is :mod:`airflow_image_catalog.imaging.containers`'.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.imaging import containers

PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: IIM datasets of record 2 (Application Record) this module reads and writes
IIM_BYLINE, IIM_CREDIT, IIM_COPYRIGHT, IIM_KEYWORDS = 80, 110, 116, 25
_IIM_UTF8 = b"\x1b%G"  # 1:90 Coded Character Set: ISO 2022 escape for UTF-8


class RightsMetadataError(CatalogError, ValueError):
    """A source's metadata cannot be read (a malformed XMP packet or IIM block)."""


@dataclass(frozen=True)
class Licensor:
    name: str | None = None
    id: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class RightsMetadata:
    """What a source says about its rights (every field optional; ``found_in`` says where it came from)."""

    copyright_notice: str | None = None
    creators: tuple[str, ...] = ()
    credit: str | None = None
    copyright_owners: tuple[str, ...] = ()
    licensors: tuple[Licensor, ...] = ()
    web_statement: str | None = None
    usage_terms: str | None = None
    model_release_status: str | None = None  # MR-NON | MR-NAP | MR-UMR | MR-LMR
    model_release_ids: tuple[str, ...] = ()
    property_release_status: str | None = None  # PR-NON | PR-NAP | PR-UPR | PR-LPR
    property_release_ids: tuple[str, ...] = ()
    data_mining: str | None = None  # DMI-UNSPECIFIED | DMI-ALLOWED | DMI-PROHIBITED-* ...
    other_constraints: str | None = None
    digital_source_type: str | None = None
    keywords: tuple[str, ...] = ()
    license_end_date: str | None = None  # YYYY-MM-DD (plus:LicenseEndDate, or the sidecar's licence_expires)
    # from a rights sidecar only (a catalog's PIM): see pipeline/rights/sidecar.py
    licence: str | None = None
    allowed_uses: tuple[str, ...] = ()
    category: str | None = None
    found_in: tuple[str, ...] = ()  # "xmp", "iim", "sidecar"

    @property
    def empty(self) -> bool:
        return not self.found_in

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v not in (None, (), [])}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RightsMetadata:
        data = dict(data or {})
        data["licensors"] = tuple(Licensor(**item) for item in data.get("licensors") or ())
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

    def merged(self, other: RightsMetadata) -> RightsMetadata:
        """``self`` with what it lacks taken from ``other`` (``self`` wins where both have a value)."""
        values = {}
        for f in fields(self):
            mine = getattr(self, f.name)
            values[f.name] = mine if mine not in (None, ()) else getattr(other, f.name)
        values["found_in"] = tuple(dict.fromkeys((*self.found_in, *other.found_in)))
        return RightsMetadata(**values)

    def overridden_by(self, other: RightsMetadata) -> RightsMetadata:
        """``other`` wins where it has a value (a sidecar is the catalog's system of record)."""
        return other.merged(self)


def vocab_code(value: str | None) -> str | None:
    """``http://ns.useplus.org/ldf/vocab/MR-NON`` (or ``MR-NON``) -> ``MR-NON``."""
    if not value:
        return None
    code = value.strip().rstrip("/").rsplit("/", 1)[-1]
    return code.upper() if re.fullmatch(r"[A-Za-z]{2,3}-[A-Za-z0-9-]+", code) else value.strip()


# -- reading ---------------------------------------------------------------------------------------


def _q(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _text(element: ET.Element | None) -> str | None:
    """A simple value, a lang-alt's x-default (else its first item), or an ``rdf:resource`` URI."""
    if element is None:
        return None
    alt = element.find("rdf:Alt", NS)
    if alt is not None:
        items = alt.findall("rdf:li", NS)
        chosen = next((li for li in items if li.get(_XML_LANG) == "x-default"), items[0] if items else None)
        return _clean(chosen.text if chosen is not None else None)
    if element.get(_q("rdf:resource")):
        return _clean(element.get(_q("rdf:resource")))
    return _clean(element.text)


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _items(element: ET.Element | None) -> list[ET.Element]:
    if element is None:
        return []
    container = element.find("rdf:Seq", NS)
    container = element.find("rdf:Bag", NS) if container is None else container
    return container.findall("rdf:li", NS) if container is not None else [element]


def _strings(element: ET.Element | None) -> tuple[str, ...]:
    return tuple(v for v in (_clean(li.text) for li in _items(element)) if v)


def _struct_field(li: ET.Element, name: str) -> str | None:
    """A field of a struct item: ``rdf:parseType="Resource"``, a nested ``rdf:Description`` or attributes."""
    for node in (li, li.find("rdf:Description", NS)):
        if node is None:
            continue
        if node.get(_q(name)):
            return _clean(node.get(_q(name)))
        found = node.find(name, NS)
        if found is not None:
            return _text(found)
    return None


def parse_rights_xmp(packet: bytes) -> RightsMetadata:
    """The rights fields of an XMP packet (attribute or element form, any number of rdf:Descriptions)."""
    start, end = packet.find(b"<x:xmpmeta"), packet.rfind(b"</x:xmpmeta>")
    body = packet[start:end + len(b"</x:xmpmeta>")] if start >= 0 and end >= 0 else packet
    try:
        root = ET.fromstring(body.strip(b"\x00 \r\n\t"))
    except ET.ParseError as exc:
        raise RightsMetadataError(f"malformed XMP packet: {exc}") from None
    found: dict[str, ET.Element | str] = {}
    for description in root.iter(_q("rdf:Description")):
        for name, value in description.attrib.items():  # attribute form: simple values only
            found.setdefault(name, value)
        for child in description:
            found.setdefault(child.tag, child)

    def simple(prefixed: str) -> str | None:
        value = found.get(_q(prefixed))
        return _clean(value) if isinstance(value, str) else _text(value)

    def element(prefixed: str) -> ET.Element | None:
        value = found.get(_q(prefixed))
        return value if isinstance(value, ET.Element) else None

    owners = tuple(v for v in (_struct_field(li, "plus:CopyrightOwnerName") for li in _items(
        element("plus:CopyrightOwner"))) if v)
    licensors = tuple(Licensor(_struct_field(li, "plus:LicensorName"), _struct_field(li, "plus:LicensorID"),
                               _struct_field(li, "plus:LicensorURL")) for li in _items(element("plus:Licensor")))
    end_date = simple("plus:LicenseEndDate")
    rights = RightsMetadata(
        copyright_notice=simple("dc:rights"),
        creators=_strings(element("dc:creator")),
        credit=simple("photoshop:Credit"),
        copyright_owners=owners,
        licensors=tuple(item for item in licensors if item != Licensor()),
        web_statement=simple("xmpRights:WebStatement"),
        usage_terms=simple("xmpRights:UsageTerms"),
        model_release_status=vocab_code(simple("plus:ModelReleaseStatus")),
        model_release_ids=_strings(element("plus:ModelReleaseID")),
        property_release_status=vocab_code(simple("plus:PropertyReleaseStatus")),
        property_release_ids=_strings(element("plus:PropertyReleaseID")),
        data_mining=vocab_code(simple("plus:DataMining")),
        other_constraints=simple("plus:OtherConstraints"),
        digital_source_type=simple("Iptc4xmpExt:DigitalSourceType"),
        keywords=_strings(element("dc:subject")),
        license_end_date=end_date[:10] if end_date else None,
    )
    return replace(rights, found_in=("xmp",)) if rights != RightsMetadata() else rights


def iim_datasets(block: bytes) -> list[tuple[int, int, bytes]]:
    """(record, dataset, data) of each IIM dataset: tag 0x1C, record, dataset, a 2-byte length (or, with
    its top bit set, the count of the length bytes that follow: the extended form)."""
    datasets, pos = [], 0
    while pos + 5 <= len(block):
        if block[pos] != 0x1C:
            break  # padding after the last dataset
        record, number = block[pos + 1], block[pos + 2]
        length = int.from_bytes(block[pos + 3:pos + 5], "big")
        pos += 5
        if length & 0x8000:
            width = length & 0x7FFF
            length, pos = int.from_bytes(block[pos:pos + width], "big"), pos + width
        if pos + length > len(block):
            raise RightsMetadataError(f"malformed IIM: dataset {record}:{number} runs past the end")
        datasets.append((record, number, block[pos:pos + length]))
        pos += length
    return datasets


def parse_rights_iim(block: bytes) -> RightsMetadata:
    """The rights fields of an IIM block (UTF-8 when 1:90 says so, else Latin-1)."""
    datasets = iim_datasets(block)
    utf8 = any(r == 1 and n == 90 and d == _IIM_UTF8 for r, n, d in datasets)

    def decode(raw: bytes) -> str:
        if utf8:
            return raw.decode("utf-8", errors="replace")
        try:  # no 1:90: most writers still used UTF-8; older ones Latin-1
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    values: dict[int, list[str]] = {}
    for record, number, raw in datasets:
        if record == 2 and (text := _clean(decode(raw).rstrip("\x00"))):
            values.setdefault(number, []).append(text)
    rights = RightsMetadata(
        copyright_notice=(values.get(IIM_COPYRIGHT) or [None])[0],
        creators=tuple(values.get(IIM_BYLINE, ())),
        credit=(values.get(IIM_CREDIT) or [None])[0],
        keywords=tuple(values.get(IIM_KEYWORDS, ())),
    )
    return replace(rights, found_in=("iim",)) if rights != RightsMetadata() else rights


def read_rights(data: bytes) -> RightsMetadata:
    """Everything a source file says about its rights (XMP first, IIM filling the gaps).

    A file without metadata (or of a format without a metadata place) gives an empty record; a
    malformed container or packet raises :class:`RightsMetadataError`.
    """
    try:
        packet, iim = containers.get_xmp(data), containers.get_iim(data)
    except containers.ContainerError as exc:
        raise RightsMetadataError(str(exc)) from None
    rights = parse_rights_xmp(packet) if packet else RightsMetadata()
    return rights.merged(parse_rights_iim(iim)) if iim else rights


# -- writing (the publish step, beside our provenance) ----------------------------------------------


def _alt(tag: str, value: str | None) -> str:
    return "" if not value else (f'<{tag}><rdf:Alt><rdf:li xml:lang="x-default">{escape(value)}</rdf:li>'
                                 f"</rdf:Alt></{tag}>")


def _list(tag: str, kind: str, values: tuple[str, ...]) -> str:
    if not values:
        return ""
    return f"<{tag}><rdf:{kind}>" + "".join(f"<rdf:li>{escape(v)}</rdf:li>" for v in values) + f"</rdf:{kind}></{tag}>"


def _one(tag: str, value: str | None) -> str:
    return f"<{tag}>{escape(value)}</{tag}>" if value else ""


def _structs(tag: str, items: list[dict[str, str | None]]) -> str:
    rows = ["".join(_one(k, v) for k, v in item.items()) for item in items]
    rows = [row for row in rows if row]
    return "" if not rows else f"<{tag}><rdf:Seq>" + "".join(
        f'<rdf:li rdf:parseType="Resource">{row}</rdf:li>' for row in rows) + f"</rdf:Seq></{tag}>"


def rights_xmp(rights: RightsMetadata) -> str:
    """The rights properties as XMP elements for one ``rdf:Description`` (namespaces: :data:`NS`).

    The digital source type is not among them: the published file's is ours (the edit), see provenance.
    """
    def resource(tag: str, code: str | None) -> str:
        """A PLUS vocabulary value as its URI in element text (as exiftool writes it; a value that is not a
        vocabulary code is kept as it came)."""
        if not code:
            return ""
        return _one(tag, PLUS_VOCAB + code if vocab_code(code) == code else code)

    return "".join([
        _alt("dc:rights", rights.copyright_notice),
        _list("dc:creator", "Seq", rights.creators),
        _one("photoshop:Credit", rights.credit),
        _alt("xmpRights:UsageTerms", rights.usage_terms),
        _one("xmpRights:WebStatement", rights.web_statement),
        _structs("plus:CopyrightOwner", [{"plus:CopyrightOwnerName": name} for name in rights.copyright_owners]),
        _structs("plus:Licensor", [{"plus:LicensorName": item.name, "plus:LicensorID": item.id,
                                     "plus:LicensorURL": item.url} for item in rights.licensors]),
        resource("plus:ModelReleaseStatus", rights.model_release_status),
        _list("plus:ModelReleaseID", "Bag", rights.model_release_ids),
        resource("plus:PropertyReleaseStatus", rights.property_release_status),
        _list("plus:PropertyReleaseID", "Bag", rights.property_release_ids),
        resource("plus:DataMining", rights.data_mining),
        _alt("plus:OtherConstraints", rights.other_constraints),
        _one("plus:LicenseEndDate", rights.license_end_date),
    ])


def _iim_dataset(number: int, text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0x7FFF:
        raw = raw[:0x7FFF]
    return bytes([0x1C, 2, number]) + len(raw).to_bytes(2, "big") + raw


def rights_iim(rights: RightsMetadata) -> bytes | None:
    """An IIM block (UTF-8) with the creator, credit, copyright notice and keywords; None when none is set.

    IIM limits these fields' lengths (By-line 32, Credit 32, Copyright Notice 128 bytes); readers
    such as exiftool accept longer values, and cutting a copyright notice would change it, so the
    values are written whole.
    """
    datasets = [_iim_dataset(IIM_BYLINE, name) for name in rights.creators]
    if rights.credit:
        datasets.append(_iim_dataset(IIM_CREDIT, rights.credit))
    if rights.copyright_notice:
        datasets.append(_iim_dataset(IIM_COPYRIGHT, rights.copyright_notice))
    if not datasets:
        return None
    envelope = bytes([0x1C, 1, 90]) + len(_IIM_UTF8).to_bytes(2, "big") + _IIM_UTF8
    version = bytes([0x1C, 2, 0, 0, 2, 0, 4])  # 2:00 Record Version 4
    return envelope + version + b"".join(datasets)


def rights_jsonld(rights: RightsMetadata) -> dict[str, Any] | None:
    """The rights as the JSON-LD a ``cawg.metadata`` C2PA assertion carries (CAWG Metadata Assertion 1.0:
    XMP properties keyed by prefix, ``@context`` naming the namespaces); None when nothing is set."""
    values: dict[str, Any] = {
        "dc:rights": rights.copyright_notice, "dc:creator": list(rights.creators) or None,
        "photoshop:Credit": rights.credit, "xmpRights:UsageTerms": rights.usage_terms,
        "xmpRights:WebStatement": rights.web_statement,
        "plus:CopyrightOwner": [{"plus:CopyrightOwnerName": n} for n in rights.copyright_owners] or None,
        "plus:Licensor": [{k: v for k, v in (("plus:LicensorName", item.name), ("plus:LicensorID", item.id),
                                             ("plus:LicensorURL", item.url)) if v} for item in rights.licensors]
        or None,
        "plus:ModelReleaseStatus": rights.model_release_status and PLUS_VOCAB + rights.model_release_status,
        "plus:ModelReleaseID": list(rights.model_release_ids) or None,
        "plus:PropertyReleaseStatus": rights.property_release_status and PLUS_VOCAB + rights.property_release_status,
        "plus:PropertyReleaseID": list(rights.property_release_ids) or None,
        "plus:DataMining": rights.data_mining and PLUS_VOCAB + rights.data_mining,
        "plus:OtherConstraints": rights.other_constraints,
    }
    values = {k: v for k, v in values.items() if v}
    if not values:
        return None
    used = {key.split(":")[0] for key in values} | {key.split(":")[0] for v in values.values() if isinstance(v, list)
                                                   for item in v if isinstance(item, dict) for key in item}
    return {"@context": {prefix: uri for prefix, uri in NS.items() if prefix in used}, **values}


def publishable(rights: RightsMetadata | None) -> RightsMetadata | None:
    """What of the source's rights is carried into the published file (sidecar-only facts such as the
    allowed uses or the category stay in the audit trail); None when nothing is."""
    if rights is None:
        return None
    kept = replace(rights, licence=None, allowed_uses=(), category=None, keywords=(), digital_source_type=None,
                   found_in=())
    return None if kept == RightsMetadata() else kept


__all__ = ["Licensor", "RightsMetadata", "RightsMetadataError", "publishable", "read_rights",
           "rights_iim", "rights_jsonld", "rights_xmp", "vocab_code"]
