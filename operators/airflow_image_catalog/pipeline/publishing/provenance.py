"""Provenance inside published images: an IPTC/XMP label and, when configured, a signed C2PA manifest.

Why both: the XMP ``Iptc4xmpExt:DigitalSourceType`` is what marketplaces, photo tools and
platforms read today to label AI-edited media, but anyone can strip or rewrite it. A C2PA
manifest binds the same claim (and the edit chain: source, recipe steps, model) to the exact
bytes with a signature, so tampering shows up on validation.

XMP is written by inserting a metadata segment/chunk into the encoded file (JPEG APP1, PNG
iTXt, WebP XMP chunk), never by re-encoding: the pixels stay identical and JPEG quality does
not drop. C2PA signing comes after XMP so the signature also covers the XMP packet.

No Airflow import here; ``c2pa`` is imported only when signing or reading a manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mimetypes
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from airflow_image_catalog import __version__
from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.imaging import containers
from airflow_image_catalog.imaging.containers import MIME, sniff_format
from airflow_image_catalog.pipeline.rights.metadata import NS as RIGHTS_NS
from airflow_image_catalog.pipeline.rights.metadata import (
    RightsMetadata,
    rights_iim,
    rights_jsonld,
    rights_xmp,
)

log = logging.getLogger(__name__)

TOOL_NAME = "airflow-image-catalog"

# IPTC Digital Source Type NewsCodes (http://cv.iptc.org/newscodes/digitalsourcetype/).
IPTC_DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: "Edited using Generative AI": augmentation, correction or enhancement using a generative AI model
#: (inpainting, outpainting): a real product photo edited by a provider model.
DST_GENERATIVE_EDIT = IPTC_DST + "compositeWithTrainedAlgorithmicMedia"
#: "Algorithmically-altered media": modification by algorithm without changing the main content;
#: the local engine's deterministic operations (no trained generative model).
DST_ALGORITHMIC_EDIT = IPTC_DST + "algorithmicallyEnhanced"

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "catalog": "urn:x-airflow-image-catalog:provenance:1/",
}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: the C2PA assertion carrying the source's rights: the Creator Assertions Working Group's metadata
#: assertion (JSON-LD of XMP properties; cawg.io/metadata/1.0)
RIGHTS_ASSERTION = "cawg.metadata"

#: backends that run without a trained generative model (see ``ProvenanceFacts.generative``)
NON_GENERATIVE_BACKENDS = frozenset({"local"})


class ProvenanceError(CatalogError, ValueError):
    """The image cannot carry provenance (unsupported or malformed container, bad signer config)."""


@dataclass
class ProvenanceStep:
    """One recipe step of the edit chain. ``prompt`` is embedded only when set (it may be proprietary)."""

    id: str
    prompt_sha256: str | None = None
    prompt: str | None = None

    @classmethod
    def from_prompt(cls, step_id: str, prompt: str | None, *, embed_prompt: bool = False) -> ProvenanceStep:
        digest = hashlib.sha256(prompt.encode()).hexdigest() if prompt else None
        return cls(step_id, digest, prompt if embed_prompt else None)


@dataclass
class ProvenanceFacts:
    """What one published image claims about itself (the publish step fills it from the edit manifest)."""

    source_sha256: str
    recipe_name: str
    recipe_fingerprint: str
    backend: str
    model: str
    steps: list[ProvenanceStep] = field(default_factory=list)
    #: None: decided from ``backend`` (the local engine is not generative, every provider model is)
    generative: bool | None = None
    #: embedded only when set; leave None when source URIs are internal (bucket names, paths)
    source_uri: str | None = None
    run_id: str | None = None
    published_at: str | None = None
    tool_name: str = TOOL_NAME
    tool_version: str = __version__
    #: the source's rights, carried into the published file (``pipeline.rights.metadata.publishable``):
    #: removing copyright-management information from a published work is itself a legal risk
    rights: RightsMetadata | None = None

    @property
    def is_generative(self) -> bool:
        return self.backend not in NON_GENERATIVE_BACKENDS if self.generative is None else self.generative

    @property
    def digital_source_type(self) -> str:
        return DST_GENERATIVE_EDIT if self.is_generative else DST_ALGORITHMIC_EDIT

    def description(self) -> str:
        how = f"Edited using generative AI ({self.model})" if self.is_generative else (
            f"Edited algorithmically, no generative AI ({self.model})")
        return f"{how}; recipe {self.recipe_name}; source sha256 {self.source_sha256}"


@dataclass
class SignerConfig:
    """A C2PA signing identity: PEM text or file paths for the chain (leaf first) and the key."""

    cert_chain: str
    private_key: str
    alg: str = "es256"
    tsa_url: str | None = None  # None: no trusted timestamp (needs network at signing time)
    #: c2pa-rs embeds a claim thumbnail by default: a JPEG preview that can add hundreds of KB
    thumbnail: bool = True

    def pem_chain(self) -> bytes:
        return _pem_or_file(self.cert_chain, "certificate chain")

    def pem_key(self) -> bytes:
        return _pem_or_file(self.private_key, "private key")


def _pem_or_file(value: str | bytes, what: str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if raw.lstrip().startswith(b"-----BEGIN"):
        return raw
    path = Path(raw.decode())
    if not path.is_file():
        raise ProvenanceError(f"C2PA {what}: neither PEM text nor a readable file: {path}")
    return path.read_bytes()


def signer_from_env(environ: dict[str, str] | None = None) -> SignerConfig | None:
    """C2PA signing is on only when ``CATALOG_C2PA_CERT`` and ``CATALOG_C2PA_KEY`` are set.

    Half a configuration is an error rather than a silent "no signature": an operator who set
    one variable meant to sign.
    """
    env = os.environ if environ is None else environ
    cert, key = env.get("CATALOG_C2PA_CERT"), env.get("CATALOG_C2PA_KEY")
    if not cert and not key:
        return None
    if not (cert and key):
        raise ProvenanceError("set both CATALOG_C2PA_CERT and CATALOG_C2PA_KEY (PEM text or file paths)")
    return SignerConfig(cert, key, alg=env.get("CATALOG_C2PA_ALG", "es256").lower(),
                        tsa_url=env.get("CATALOG_C2PA_TSA_URL") or None,
                        thumbnail=env.get("CATALOG_C2PA_THUMBNAIL", "true").lower() not in ("0", "false", "no"))


# --- formats ------------------------------------------------------------------------------------

_FORMAT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "image/jpeg": "jpeg", "png": "png", "image/png": "png",
                   "webp": "webp", "image/webp": "webp"}


def _format(data: bytes, fmt: str | None) -> str:
    """Trust the bytes: a ``.jpg`` that is really a PNG gets PNG metadata, a mismatch is reported."""
    sniffed = sniff_format(data)
    if sniffed is None:
        raise ProvenanceError(f"unsupported image format for provenance: {fmt or 'unknown'}")
    if fmt and _FORMAT_ALIASES.get(fmt.lower().lstrip(".")) not in (None, sniffed):
        raise ProvenanceError(f"image bytes are {sniffed}, not {fmt}")
    return sniffed


# --- XMP packet ---------------------------------------------------------------------------------

def build_xmp(facts: ProvenanceFacts) -> bytes:
    """An XMP packet with the IPTC digital source type, the tool and the edit chain."""
    def text(tag: str, value: str | None) -> str:
        return "" if value is None else f"<{tag}>{escape(value)}</{tag}>"

    steps = "".join(
        '<rdf:li rdf:parseType="Resource">'
        + text("catalog:StepId", step.id) + text("catalog:PromptSHA256", step.prompt_sha256)
        + text("catalog:Prompt", step.prompt) + "</rdf:li>"
        for step in facts.steps
    )
    fields = "".join([
        text("Iptc4xmpExt:DigitalSourceType", facts.digital_source_type),
        text("xmp:CreatorTool", f"{facts.tool_name} {facts.tool_version}"),
        text("xmp:MetadataDate", facts.published_at),
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(facts.description())}'
        "</rdf:li></rdf:Alt></dc:description>",
        text("catalog:SourceSHA256", facts.source_sha256),
        text("catalog:SourceURI", facts.source_uri),
        text("catalog:Recipe", facts.recipe_name),
        text("catalog:RecipeFingerprint", facts.recipe_fingerprint),
        text("catalog:Backend", facts.backend),
        text("catalog:Model", facts.model),
        text("catalog:Generative", "True" if facts.is_generative else "False"),
        text("catalog:RunId", facts.run_id),
        text("catalog:PublishedAt", facts.published_at),
        f"<catalog:Steps><rdf:Seq>{steps}</rdf:Seq></catalog:Steps>" if steps else "",
        rights_xmp(facts.rights) if facts.rights else "",
    ])
    used = {**NS, **RIGHTS_NS} if facts.rights else NS
    namespaces = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in used.items() if prefix != "x")
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="{NS["x"]}" x:xmptk="{escape(facts.tool_name)}">'
        f'<rdf:RDF xmlns:rdf="{NS["rdf"]}"><rdf:Description rdf:about="" {namespaces}>'
        f"{fields}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def parse_xmp(packet: bytes) -> dict[str, Any]:
    """The fields :func:`build_xmp` writes, from any XMP packet (missing ones are left out)."""
    start, end = packet.find(b"<x:xmpmeta"), packet.rfind(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        raise ProvenanceError("no x:xmpmeta element in the XMP packet")
    root = ET.fromstring(packet[start:end + len(b"</x:xmpmeta>")])
    result: dict[str, Any] = {}
    simple = {
        "Iptc4xmpExt:DigitalSourceType": "digital_source_type", "xmp:CreatorTool": "creator_tool",
        "catalog:SourceSHA256": "source_sha256", "catalog:SourceURI": "source_uri",
        "catalog:Recipe": "recipe_name", "catalog:RecipeFingerprint": "recipe_fingerprint",
        "catalog:Backend": "backend", "catalog:Model": "model", "catalog:RunId": "run_id",
        "catalog:PublishedAt": "published_at", "catalog:Generative": "generative",
    }
    for description in root.iter(_qname("rdf:Description")):
        for qualified, key in simple.items():  # attribute form (other writers) or element form (ours)
            value = description.get(_qname(qualified))
            element = description.find(qualified, NS)
            if element is not None and element.text is not None:
                value = element.text
            if value is not None:
                result[key] = value
        for li in description.findall("dc:description/rdf:Alt/rdf:li", NS):
            if li.get(XML_LANG, "x-default") == "x-default":
                result["description"] = li.text
        steps = description.findall("catalog:Steps/rdf:Seq/rdf:li", NS)
        if steps:
            result["steps"] = [
                {key: li.findtext(f"catalog:{tag}", namespaces=NS) for key, tag in
                 (("id", "StepId"), ("prompt_sha256", "PromptSHA256"), ("prompt", "Prompt"))
                 if li.find(f"catalog:{tag}", NS) is not None}
                for li in steps
            ]
    if "generative" in result:
        result["generative"] = result["generative"] == "True"
    return result


def _qname(prefixed: str) -> str:
    prefix, local = prefixed.split(":")
    return f"{{{NS[prefix]}}}{local}"


def embed_xmp(data: bytes, fmt: str | None, facts: ProvenanceFacts) -> bytes:
    """``data`` with our XMP packet (replacing any earlier one); image data is copied byte for byte."""
    _format(data, fmt)
    try:
        return containers.put_xmp(data, build_xmp(facts))
    except containers.ContainerError as exc:
        raise ProvenanceError(str(exc)) from None


def read_xmp(data: bytes) -> dict[str, Any] | None:
    """The provenance fields of the embedded XMP packet; None when the file carries none."""
    try:
        packet = containers.get_xmp(data)
    except containers.ContainerError as exc:
        raise ProvenanceError(str(exc)) from None
    return parse_xmp(packet) if packet else None


# --- C2PA ---------------------------------------------------------------------------------------

def build_manifest(facts: ProvenanceFacts, fmt: str, *, source_attached: bool = False) -> dict[str, Any]:
    """The manifest definition: the source opened as parent ingredient, one ``c2pa.edited`` per step.

    C2PA requires the first action to be ``c2pa.opened`` (or ``created``) naming the parent; without
    the source's bytes the ingredient is described by its sha256 only.
    """
    agent = {"name": facts.model}  # what made the pixels; the claim generator names this tool
    run = {"recipe": facts.recipe_name, "recipe_fingerprint": facts.recipe_fingerprint,
           "backend": facts.backend, "model": facts.model, "run_id": facts.run_id}
    edits = [
        {"action": "c2pa.edited", "digitalSourceType": facts.digital_source_type, "softwareAgent": agent,
         "description": f"recipe {facts.recipe_name}, step {step.id}",
         "parameters": {**run, "step": step.id, "prompt_sha256": step.prompt_sha256,
                        **({"prompt": step.prompt} if step.prompt else {})}}
        for step in facts.steps
    ] or [{"action": "c2pa.edited", "digitalSourceType": facts.digital_source_type, "softwareAgent": agent,
           "parameters": run}]
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": facts.tool_name, "version": facts.tool_version}],
        "title": f"{facts.recipe_name}.{fmt}",
        "format": MIME[fmt],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["source"],
                                                     "source_sha256": facts.source_sha256}},
            *edits,
        ]}}],
    }
    metadata = rights_jsonld(facts.rights) if facts.rights else None
    if metadata:  # the source's rights, bound to the bytes by the signature (CAWG metadata assertion)
        manifest["assertions"].append({"label": RIGHTS_ASSERTION, "data": metadata})
    if not source_attached:
        manifest["ingredients"] = [_source_ingredient(facts)]
    return manifest


def _source_ingredient(facts: ProvenanceFacts) -> dict[str, Any]:
    name = (facts.source_uri or "").rstrip("/").rsplit("/", 1)[-1] or "source"
    ingredient = {"title": name, "relationship": "parentOf", "label": "source",
                  "instance_id": f"sha256:{facts.source_sha256}",
                  "format": mimetypes.guess_type(name)[0] or "application/octet-stream"}
    if facts.source_uri:
        ingredient["metadata"] = {"dc:source": facts.source_uri}
    return ingredient


def sign_c2pa(data: bytes, fmt: str | None, facts: ProvenanceFacts, signer_config: SignerConfig, *,
              source: bytes | None = None) -> bytes:
    """``data`` with an embedded, signed C2PA manifest.

    ``source``: the original image's bytes, when at hand, become a hashed parent ingredient (and
    carry over any C2PA history the source already had); otherwise it is named by its sha256.
    """
    import c2pa

    fmt = _format(data, fmt)
    info = c2pa.C2paSignerInfo(signer_config.alg.lower().encode(), signer_config.pem_chain(),
                               signer_config.pem_key(), signer_config.tsa_url)
    try:
        signer = c2pa.Signer.from_info(info)
        settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": signer_config.thumbnail}}})
        manifest = build_manifest(facts, fmt, source_attached=source is not None)
        with c2pa.Builder.from_json(manifest, context=c2pa.Context(settings=settings)) as builder:
            if source is not None:
                source_fmt = sniff_format(source)
                builder.add_ingredient(_source_ingredient(facts) | ({"format": MIME[source_fmt]} if source_fmt
                                                                    else {}),
                                       MIME.get(source_fmt or "", "application/octet-stream"), io.BytesIO(source))
            out = io.BytesIO()
            builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
            return out.getvalue()
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}") from exc


def read_c2pa(data: bytes, fmt: str | None = None, *, trust_anchors: str | None = None) -> dict[str, Any] | None:
    """The manifest store as JSON (``validation_state``: Invalid / Valid / Trusted); None without one.

    ``trust_anchors``: PEM root certificates to trust; without them a private CA's signature
    validates as ``Valid`` with a ``signingCredential.untrusted`` status, never ``Trusted``.
    """
    import c2pa

    fmt = _format(data, fmt)
    context = None
    if trust_anchors:
        context = c2pa.Context(settings=c2pa.Settings.from_dict({"trust": {"user_anchors": trust_anchors}}))
    reader = c2pa.Reader.try_create(MIME[fmt], io.BytesIO(data), context=context)
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())


def c2pa_summary(store: dict[str, Any]) -> dict[str, Any]:
    """The parts of a manifest store an audit record needs: validity, actions, signer."""
    active = store["manifests"][store["active_manifest"]]
    actions = [a for assertion in active.get("assertions", []) if assertion["label"].startswith("c2pa.actions")
               for a in assertion["data"]["actions"]]
    results = store.get("validation_results", {}).get("activeManifest", {})
    return {
        "manifest_label": store["active_manifest"],
        "validation_state": store.get("validation_state"),
        "failures": sorted({f["code"] for f in results.get("failure", [])}),
        "actions": [a["action"] for a in actions],
        "digital_source_types": sorted({a["digitalSourceType"] for a in actions if "digitalSourceType" in a}),
        "signer": (active.get("signature_info") or {}).get("common_name"),
        "issuer": (active.get("signature_info") or {}).get("issuer"),
    }


# --- the publish step's entry point ---------------------------------------------------------------

def apply_provenance(data: bytes, fmt: str | None, facts: ProvenanceFacts, *,
                     c2pa_signer: SignerConfig | None = None,
                     source: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    """XMP always, a C2PA manifest when a signer is configured; returns the new bytes and an audit summary.

    The summary records the sha256 of the bytes before and after, so the audit trail can tie
    the verified edit output to the published file.
    """
    fmt = _format(data, fmt)
    out = embed_xmp(data, fmt, facts)
    iim = rights_iim(facts.rights) if facts.rights and fmt == "jpeg" else None
    if iim:  # JPEG readers that know only IPTC-IIM (older DAMs, marketplaces) see the copyright too
        out = containers.put_iim(out, iim)
    summary: dict[str, Any] = {
        "input_sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt,
        "digital_source_type": facts.digital_source_type,
        "xmp": True,
        "iim": bool(iim),
        "rights": bool(facts.rights),
        "c2pa": None,
    }
    if c2pa_signer is not None:
        out = sign_c2pa(out, fmt, facts, c2pa_signer, source=source)
        store = read_c2pa(out, fmt)
        summary["c2pa"] = {**c2pa_summary(store), "alg": c2pa_signer.alg, "thumbnail": c2pa_signer.thumbnail,
                           "timestamped": bool(c2pa_signer.tsa_url)} if store else None
    summary["sha256"] = hashlib.sha256(out).hexdigest()
    summary["bytes"] = len(out)
    summary["facts"] = asdict(facts) | {"generative": facts.is_generative,
                                        "rights": facts.rights.to_dict() if facts.rights else None}
    return out, summary
