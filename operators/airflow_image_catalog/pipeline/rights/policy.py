"""Rights policies and the per-image decision: ``go``, ``needs_consent`` or ``refused``.

A policy is a YAML document (shipped: ``policies/default.yaml``, ``policies/strict.yaml``; or any file
or URI), named by a recipe's ``rights:`` field or the DAG's ``rights_policy`` param. The decision is
pure: the rights a source carries, the people found in it (or None when not looked for), a policy
and today's date in, a decision with every reason out. ``refused`` beats ``needs_consent`` beats
``go``; each reason carries a code (for counts, facets and the audit) and a sentence (for people).

Stated defaults (``default.yaml``): an image without any rights metadata is ``go`` (a catalog's own
product shots usually carry none; ``strict`` asks a person instead); the PLUS Data Mining values
that prohibit AI/ML use refuse, those that point at other text (``...-SEECONSTRAINT`` and the
encoded rights expressions) read that text or ask a person; usage terms or other constraints
matching the refuse patterns (``no AI``, ``no derivatives`` ...) refuse, those matching the consent
patterns (``internal use only``, ``editorial use only`` ...) ask; an expired licence refuses; a
frontal face without a model release on record asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from airflow_image_catalog.config.documents import load_document
from airflow_image_catalog.exceptions import CatalogError
from airflow_image_catalog.pipeline.rights.metadata import RightsMetadata
from airflow_image_catalog.pipeline.rights.people import DEFAULT_MAX_SIDE, DEFAULT_MIN_FACE

GO, NEEDS_CONSENT, REFUSED = "go", "needs_consent", "refused"
DECISIONS = (GO, NEEDS_CONSENT, REFUSED)
MODEL_RELEASE_RULES = ("when_people_detected", "always", "never")
POLICIES_DIR = Path(__file__).parent / "policies"
_RANK = {GO: 0, NEEDS_CONSENT: 1, REFUSED: 2}
#: Creative Commons "NoDerivatives" licences forbid adapted versions (creativecommons.org/licenses/by-nd/4.0/)
_CC_NO_DERIVATIVES = re.compile(r"creativecommons\.org/licenses/[a-z-]*\bnd\b", re.I)


class RightsPolicyError(CatalogError, ValueError):
    """A rights policy document is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class RightsPolicy:
    name: str = "default"
    use: str = "ai_edit"  # what a sidecar's allowed_uses must list
    missing_metadata: str = GO  # go | needs_consent
    refuse_data_mining: tuple[str, ...] = ()
    consent_data_mining: tuple[str, ...] = ()
    refuse_terms: tuple[str, ...] = ()
    consent_terms: tuple[str, ...] = ()
    refuse_expired: bool = True
    model_release: str = "when_people_detected"
    property_release_categories: tuple[str, ...] = ()
    detection_max_side: int = DEFAULT_MAX_SIDE
    detection_min_face: float = DEFAULT_MIN_FACE
    origin: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_refuse", [re.compile(p, re.I) for p in self.refuse_terms])
        object.__setattr__(self, "_consent", [re.compile(p, re.I) for p in self.consent_terms])

    def refusing_terms(self, text: str) -> list[str]:
        return [m.group(0) for p in self._refuse if (m := p.search(text))]  # type: ignore[attr-defined]

    def consent_matches(self, text: str) -> list[str]:
        return [m.group(0) for p in self._consent if (m := p.search(text))]  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "origin": self.origin, "use": self.use, "missing_metadata": self.missing_metadata,
                "model_release": self.model_release, "refuse_expired": self.refuse_expired,
                "property_release_categories": list(self.property_release_categories)}


@dataclass
class RightsDecision:
    decision: str = GO
    reasons: list[dict[str, str]] = field(default_factory=list)  # [{code, decision, message}]

    def add(self, decision: str, code: str, message: str) -> None:
        self.reasons.append({"code": code, "decision": decision, "message": message})
        if _RANK[decision] > _RANK[self.decision]:
            self.decision = decision

    @property
    def codes(self) -> list[str]:
        return [r["code"] for r in self.reasons]

    def summary(self) -> str:
        return "; ".join(r["message"] for r in self.reasons if r["decision"] == self.decision) or "no rights concern"


# -- loading ----------------------------------------------------------------------------------------

_FIELDS = ("name", "use", "missing_metadata", "refuse_data_mining", "consent_data_mining", "refuse_terms",
           "consent_terms", "refuse_expired", "model_release", "property_release_categories", "detection_max_side",
           "detection_min_face")


def shipped_policies() -> dict[str, Path]:
    return {path.stem: path for path in sorted(POLICIES_DIR.glob("*.yaml"))}


def parse_policy(data: Any, *, origin: str = "<policy>") -> RightsPolicy:
    label = origin.rsplit("/", 1)[-1]

    def fail(name: str, message: str) -> None:
        raise RightsPolicyError(f"{label}: {name}: {message}")

    if not isinstance(data, dict):
        raise RightsPolicyError(f"{label}: must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        fail(unknown[0], f"unknown field (allowed: {', '.join(_FIELDS)})")
    values: dict[str, Any] = {}
    for name in ("refuse_data_mining", "consent_data_mining", "refuse_terms", "consent_terms",
                 "property_release_categories"):
        items = data.get(name) or []
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            fail(name, "must be a list of strings")
        values[name] = tuple(i.upper() if name.endswith("data_mining") else i.lower() if name.startswith("property")
                             else i for i in items)
    for name in ("refuse_terms", "consent_terms"):
        for pattern in values[name]:
            try:
                re.compile(pattern)
            except re.error as exc:
                fail(name, f"bad pattern {pattern!r}: {exc}")
    if data.get("missing_metadata", GO) not in (GO, NEEDS_CONSENT):
        fail("missing_metadata", f"must be {GO} or {NEEDS_CONSENT}, got {data.get('missing_metadata')!r}")
    if data.get("model_release", "when_people_detected") not in MODEL_RELEASE_RULES:
        fail("model_release", f"must be one of {', '.join(MODEL_RELEASE_RULES)}, got {data.get('model_release')!r}")
    if not isinstance(data.get("refuse_expired", True), bool):
        fail("refuse_expired", "must be true or false")
    side = data.get("detection_max_side", DEFAULT_MAX_SIDE)
    if not isinstance(side, int) or isinstance(side, bool) or not 64 <= side <= 4096:
        fail("detection_max_side", f"must be an integer 64..4096, got {side!r}")
    face = data.get("detection_min_face", DEFAULT_MIN_FACE)
    if not isinstance(face, int | float) or isinstance(face, bool) or not 0 < face < 1:
        fail("detection_min_face", f"must be a number between 0 and 1, got {face!r}")
    return RightsPolicy(name=str(data.get("name") or Path(label).stem), use=str(data.get("use", "ai_edit")).lower(),
                        missing_metadata=data.get("missing_metadata", GO),
                        refuse_expired=data.get("refuse_expired", True),
                        model_release=data.get("model_release", "when_people_detected"),
                        detection_max_side=side, detection_min_face=float(face), origin=origin, **values)


def load_policy(ref: str | None) -> RightsPolicy:
    """A shipped policy by name (empty: ``default``), or a policy file by path or URI."""
    data, uri = load_document(ref or "default", shipped_policies(), kind="rights policy", error=RightsPolicyError)
    return parse_policy(data, origin=uri)


# -- deciding ---------------------------------------------------------------------------------------


def needs_people_check(rights: RightsMetadata, policy: RightsPolicy) -> bool:
    """Whether the faces in the image decide anything: the policy asks for model releases when people are
    shown and none is on record (an unlimited release, or release ids, settle it without looking)."""
    if policy.model_release != "when_people_detected":
        return False
    return not _model_release_on_record(rights)


def _model_release_on_record(rights: RightsMetadata) -> bool:
    status = rights.model_release_status
    return status == "MR-UMR" or (bool(rights.model_release_ids) and status != "MR-LMR")


def _terms(rights: RightsMetadata) -> list[tuple[str, str]]:
    return [(label, text) for label, text in (("usage terms", rights.usage_terms),
                                              ("other constraints", rights.other_constraints),
                                              ("licence", rights.licence)) if text]


def decide_rights(rights: RightsMetadata, people: Any, policy: RightsPolicy, *, today: date) -> RightsDecision:
    """The policy's decision for one image; ``people`` is a :class:`~.people.PeopleFinding` or None (not looked)."""
    decision = RightsDecision()
    if rights.empty:
        decision.add(policy.missing_metadata, "no_rights_metadata",
                     f"no rights metadata (IPTC / XMP / sidecar): the policy's default is {policy.missing_metadata}")
    mining = rights.data_mining
    if mining in policy.refuse_data_mining:
        decision.add(REFUSED, "ai_use_prohibited", f"the data-mining / AI-use constraint (plus:DataMining) is {mining}")
    elif mining in policy.consent_data_mining:
        if not rights.other_constraints or not policy.refusing_terms(rights.other_constraints):
            decision.add(NEEDS_CONSENT, "ai_constraint_needs_review",
                         f"plus:DataMining is {mining}: the constraint it points at needs a person to read it")
    for label, text in _terms(rights):
        refusing = policy.refusing_terms(text)
        if refusing:
            decision.add(REFUSED, "terms_forbid", f"the {label} forbid it ({', '.join(repr(t) for t in refusing)}: "
                                                  f"{text!r})")
        elif consent := policy.consent_matches(text):
            decision.add(NEEDS_CONSENT, "terms_need_review",
                         f"the {label} restrict use ({', '.join(repr(t) for t in consent)}): a person decides")
    if rights.web_statement and _CC_NO_DERIVATIVES.search(rights.web_statement):
        decision.add(REFUSED, "no_derivatives", f"the licence forbids derivatives ({rights.web_statement})")
    if rights.license_end_date and policy.refuse_expired and rights.license_end_date < today.isoformat():
        decision.add(REFUSED, "licence_expired", f"the licence expired on {rights.license_end_date}")
    if rights.allowed_uses and policy.use not in rights.allowed_uses:
        decision.add(REFUSED, "use_not_licensed",
                     f"the licence allows {', '.join(rights.allowed_uses)}, not {policy.use}")
    _model_release(decision, rights, people, policy)
    _property_release(decision, rights, policy)
    return decision


def _model_release(decision: RightsDecision, rights: RightsMetadata, people: Any, policy: RightsPolicy) -> None:
    if policy.model_release == "never" or _model_release_on_record(rights):
        return
    limited = rights.model_release_status == "MR-LMR"
    if policy.model_release == "always":
        if rights.model_release_status != "MR-NAP":
            decision.add(NEEDS_CONSENT, "limited_model_release" if limited else "no_model_release",
                         "only limited model releases are on record" if limited else
                         "the policy requires a model release and none is on record")
        return
    if people is None or not people.faces:
        return
    found = f"{people.faces} face{'s' if people.faces != 1 else ''} found"
    if limited:
        decision.add(NEEDS_CONSENT, "limited_model_release", f"{found}; only limited model releases are on record")
    elif rights.model_release_status == "MR-NAP":
        decision.add(NEEDS_CONSENT, "no_model_release", f"{found}, but the metadata says no release is applicable")
    else:
        decision.add(NEEDS_CONSENT, "no_model_release", f"{found} and no model release on record")


def _property_release(decision: RightsDecision, rights: RightsMetadata, policy: RightsPolicy) -> None:
    if not policy.property_release_categories:
        return
    labels = {label.lower() for label in (rights.category, *rights.keywords) if label}
    listed = sorted(labels & set(policy.property_release_categories))
    status = rights.property_release_status
    if not listed or status in ("PR-UPR", "PR-NAP") or (rights.property_release_ids and status != "PR-LPR"):
        return
    decision.add(NEEDS_CONSENT, "no_property_release",
                 f"category {', '.join(listed)} needs a property release and "
                 f"{'only limited ones are' if status == 'PR-LPR' else 'none is'} on record")
