"""The rights policy's decision per image: refused beats needs_consent beats go, every reason named."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.rights.metadata import RightsMetadata
from airflow_image_catalog.pipeline.rights.policy import (
    GO,
    NEEDS_CONSENT,
    REFUSED,
    RightsPolicyError,
    decide_rights,
    load_policy,
    needs_people_check,
)

TODAY = date(2026, 12, 1)
DEFAULT, STRICT = load_policy("default"), load_policy("strict")


@dataclass
class Faces:
    faces: int


def _rights(**values) -> RightsMetadata:
    return RightsMetadata(**values, found_in=("xmp",))


def _decide(rights: RightsMetadata, people=None, policy=DEFAULT):
    return decide_rights(rights, people, policy, today=TODAY)


def test_the_issues_source_is_refused_for_its_usage_terms():
    decision = _decide(_rights(copyright_notice="© Acme", usage_terms="Internal use only. No AI processing."))
    assert decision.decision == REFUSED
    assert decision.codes == ["terms_forbid"]  # a refusal needs no person: the restriction is not asked about
    assert "'No AI'" in decision.summary()


@pytest.mark.parametrize("terms", ["Do not alter the image.", "AI processing is prohibited", "NoAI",
                                   "not to be used with generative tools", "No derivatives"])
def test_terms_that_forbid_edits_or_ai_refuse(terms: str):
    assert _decide(_rights(usage_terms=terms)).decision == REFUSED


@pytest.mark.parametrize("terms", ["Editorial use only", "Non-commercial", "For reference only"])
def test_restricting_terms_ask_a_person(terms: str):
    decision = _decide(_rights(usage_terms=terms))
    assert (decision.decision, decision.codes) == (NEEDS_CONSENT, ["terms_need_review"])


def test_terms_that_allow_go():
    assert _decide(_rights(usage_terms="Licensed for e-commerce use, edits permitted.")).decision == GO


def test_data_mining_constraint():
    assert _decide(_rights(data_mining="DMI-PROHIBITED-GENAIMLTRAINING")).codes == ["ai_use_prohibited"]
    assert _decide(_rights(data_mining="DMI-ALLOWED")).decision == GO
    see = _decide(_rights(data_mining="DMI-PROHIBITED-SEECONSTRAINT", other_constraints="Retouching is fine."))
    assert (see.decision, see.codes) == (NEEDS_CONSENT, ["ai_constraint_needs_review"])
    read = _decide(_rights(data_mining="DMI-PROHIBITED-SEECONSTRAINT", other_constraints="No AI use."))
    assert (read.decision, read.codes) == (REFUSED, ["terms_forbid"])  # the pointed-at text decides


def test_licences_expiry_no_derivatives_and_allowed_uses():
    assert _decide(_rights(license_end_date="2026-11-30")).codes == ["licence_expired"]
    assert _decide(_rights(license_end_date="2026-12-01")).decision == GO  # valid through its last day
    assert _decide(_rights(web_statement="https://creativecommons.org/licenses/by-nd/4.0/")).codes == [
        "no_derivatives"]
    assert _decide(_rights(web_statement="https://creativecommons.org/licenses/by/4.0/")).decision == GO
    assert _decide(_rights(allowed_uses=("web", "print"))).codes == ["use_not_licensed"]
    assert _decide(_rights(allowed_uses=("web", "ai_edit"))).decision == GO


def test_missing_metadata_follows_the_stated_default():
    assert _decide(RightsMetadata()).decision == GO
    assert _decide(RightsMetadata(), policy=STRICT).codes == ["no_rights_metadata"]
    assert _decide(RightsMetadata(), policy=STRICT).decision == NEEDS_CONSENT


def test_model_release_when_people_are_found():
    assert _decide(_rights(), Faces(0)).decision == GO
    assert _decide(_rights(), Faces(2)).codes == ["no_model_release"]
    assert "2 faces found" in _decide(_rights(), Faces(2)).summary()
    assert _decide(_rights(model_release_status="MR-LMR", model_release_ids=("MR-1",)), Faces(1)).codes == [
        "limited_model_release"]
    released = _rights(model_release_status="MR-UMR")
    assert _decide(released, Faces(1)).decision == GO and not needs_people_check(released, DEFAULT)
    assert not needs_people_check(_rights(model_release_ids=("MR-9",)), DEFAULT)
    assert needs_people_check(_rights(model_release_status="MR-NON"), DEFAULT)


def test_property_release_for_listed_categories():
    pet = RightsMetadata(category="pet", found_in=("sidecar",))
    assert _decide(pet).decision == GO  # the default lists no category
    assert _decide(pet, policy=STRICT).codes == ["no_property_release"]
    assert _decide(RightsMetadata(keywords=("Logo",), property_release_status="PR-UPR", found_in=("xmp",)),
                   policy=STRICT).decision == GO


def test_bad_policy_files_name_the_field(tmp_path: Path):
    def bad(text: str) -> str:
        path = tmp_path / "p.yaml"
        path.write_text(text)
        with pytest.raises(RightsPolicyError) as info:
            load_policy(str(path))
        return str(info.value)

    assert "p.yaml: missing_metadata: must be go or needs_consent" in bad("missing_metadata: refused\n")
    assert "p.yaml: refuse_terms: bad pattern" in bad("refuse_terms: ['(']\n")
    assert "p.yaml: model_releases: unknown field" in bad("model_releases: always\n")
    assert "detection_min_face: must be a number between 0 and 1" in bad("detection_min_face: 2\n")
