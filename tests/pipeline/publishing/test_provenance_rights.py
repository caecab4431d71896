"""The source's rights kept in the published file: exiftool reads them back next to our provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_image_catalog.pipeline.publishing.provenance import (
    RIGHTS_ASSERTION,
    SignerConfig,
    apply_provenance,
    read_c2pa,
    read_xmp,
)
from airflow_image_catalog.pipeline.rights.metadata import Licensor, RightsMetadata, read_rights
from tests.exiftool import needs_exiftool, read_tags
from tests.pipeline.publishing.test_provenance import encode, facts
from tests.pki import throwaway_pki

RIGHTS = RightsMetadata(
    copyright_notice="© 2026 Acme Photo Ltd", creators=("Jane Doe",), credit="Acme Photo",
    copyright_owners=("Acme Photo Ltd",), licensors=(Licensor(name="Acme Licensing", url="https://acme.example"),),
    web_statement="https://acme.example/licence", usage_terms="Licensed to Shop Ltd for e-commerce, edits allowed.",
    model_release_status="MR-UMR", model_release_ids=("MR-1",), property_release_status="PR-NAP",
    data_mining="DMI-ALLOWED", license_end_date="2030-01-31",
)


@needs_exiftool
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_published_file_keeps_the_sources_rights(tmp_path: Path, fmt: str):
    out, summary = apply_provenance(encode(fmt), fmt.lower(), facts(rights=RIGHTS))
    path = tmp_path / f"published.{fmt.lower()}"
    path.write_bytes(out)

    tags = read_tags(path)

    assert tags["XMP-dc:Rights"] == RIGHTS.copyright_notice and tags["XMP-dc:Creator"] == ["Jane Doe"]
    assert tags["XMP-photoshop:Credit"] == "Acme Photo"
    assert tags["XMP-xmpRights:UsageTerms"] == RIGHTS.usage_terms
    assert tags["XMP-xmpRights:WebStatement"] == RIGHTS.web_statement
    assert tags["XMP-plus:Licensor"] == [{"LicensorName": "Acme Licensing", "LicensorURL": "https://acme.example"}]
    assert tags["XMP-plus:CopyrightOwner"] == [{"CopyrightOwnerName": "Acme Photo Ltd"}]
    assert tags["XMP-plus:ModelReleaseStatus"] == "Unlimited Model Releases"
    assert tags["XMP-plus:ModelReleaseID"] == ["MR-1"]
    assert tags["XMP-plus:PropertyReleaseStatus"] == "Not Applicable"
    assert tags["XMP-plus:DataMining"] == "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"
    assert tags["XMP-plus:LicenseEndDate"] == "2030:01:31"
    # our provenance beside it: the digital source type is the edit's, not the source's
    assert tags["XMP-iptcExt:DigitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert read_xmp(out)["recipe_name"] == "marketplace_white_square"
    if fmt == "JPEG":  # and IPTC-IIM for readers that know only that
        assert tags["IPTC:CopyrightNotice"] == RIGHTS.copyright_notice and tags["IPTC:By-line"] == "Jane Doe"
        assert tags["IPTC:Credit"] == "Acme Photo"
    else:
        assert not any(key.startswith("IPTC:") for key in tags)
    assert summary["iim"] is (fmt == "JPEG") and summary["facts"]["rights"]["copyright_notice"]
    # and our own reader agrees with exiftool
    assert read_rights(out).copyright_notice == RIGHTS.copyright_notice


def test_no_rights_no_rights_properties():
    out, summary = apply_provenance(encode("JPEG"), "jpeg", facts())
    assert read_rights(out).copyright_notice is None and summary["iim"] is False


def test_signed_manifest_carries_the_rights_assertion():
    pki = throwaway_pki()
    signer = SignerConfig(pki["chain"], pki["key"], alg="es256", thumbnail=False)
    out, _ = apply_provenance(encode("JPEG"), "jpeg", facts(rights=RIGHTS), c2pa_signer=signer)

    store = read_c2pa(out, trust_anchors=pki["ca"])

    assert store["validation_state"] == "Trusted"
    manifest = store["manifests"][store["active_manifest"]]
    rights = next(a["data"] for a in manifest["assertions"] if a["label"] == RIGHTS_ASSERTION)
    assert rights["dc:rights"] == RIGHTS.copyright_notice and rights["dc:creator"] == ["Jane Doe"]
    assert rights["xmpRights:UsageTerms"] == RIGHTS.usage_terms
    assert rights["plus:Licensor"] == [{"plus:LicensorName": "Acme Licensing", "plus:LicensorURL": "https://acme.example"}]
    assert rights["@context"]["plus"] == "http://ns.useplus.org/ldf/xmp/1.0/"
