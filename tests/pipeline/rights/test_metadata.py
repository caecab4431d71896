"""Rights metadata read from files exiftool wrote, and written back so that exiftool reads it again."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from airflow_image_catalog.imaging import containers
from airflow_image_catalog.pipeline.rights.metadata import (
    Licensor,
    RightsMetadata,
    RightsMetadataError,
    parse_rights_iim,
    publishable,
    read_rights,
    rights_iim,
)
from tests.exiftool import needs_exiftool, read_tags, write_tags

NOTICE = "© 2026 Acme Photo Ltd"
TERMS = "Internal use only. No AI processing."
#: every rights field of the IPTC Photo Metadata Standard this project reads, as exiftool names them
IPTC_RIGHTS = {
    "XMP-dc:Rights": NOTICE, "XMP-dc:Creator": ["Jane Doe", "Ana Müller"], "XMP-photoshop:Credit": "Acme Photo",
    "XMP-xmpRights:UsageTerms": TERMS, "XMP-xmpRights:WebStatement": "https://acme.example/licence",
    "XMP-plus:CopyrightOwnerName": "Acme Photo Ltd", "XMP-plus:LicensorName": "Acme Licensing",
    "XMP-plus:LicensorURL": "https://acme.example", "XMP-plus:ModelReleaseStatus": "Limited or Incomplete",
    "XMP-plus:ModelReleaseID": ["MR-1", "MR-2"], "XMP-plus:PropertyReleaseStatus": "Not Applicable",
    "XMP-plus:DataMining": "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING",
    "XMP-plus:OtherConstraints": "see the contract", "XMP-plus:LicenseEndDate": "2030:01:31",
    "XMP-iptcExt:DigitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
    "XMP-dc:Subject": ["mug", "kitchen"],
}


def _image(path: Path, fmt: str) -> Path:
    Image.new("RGB", (64, 48), (200, 120, 60)).save(path, fmt)
    return path


@needs_exiftool
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_reads_every_rights_field_exiftool_writes(tmp_path: Path, fmt: str):
    path = _image(tmp_path / f"source.{fmt.lower()}", fmt)
    write_tags(path, IPTC_RIGHTS)

    rights = read_rights(path.read_bytes())

    assert rights.copyright_notice == NOTICE and rights.creators == ("Jane Doe", "Ana Müller")
    assert rights.credit == "Acme Photo" and rights.usage_terms == TERMS
    assert rights.web_statement == "https://acme.example/licence"
    assert rights.copyright_owners == ("Acme Photo Ltd",)
    assert rights.licensors == (Licensor(name="Acme Licensing", url="https://acme.example"),)
    assert rights.model_release_status == "MR-LMR" and rights.model_release_ids == ("MR-1", "MR-2")
    assert rights.property_release_status == "PR-NAP" and rights.property_release_ids == ()
    assert rights.data_mining == "DMI-PROHIBITED-AIMLTRAINING" and rights.other_constraints == "see the contract"
    assert rights.license_end_date == "2030-01-31"
    assert rights.digital_source_type.endswith("/digitalCapture") and rights.keywords == ("mug", "kitchen")
    assert rights.found_in == ("xmp",)


@needs_exiftool
def test_iim_fills_what_xmp_lacks_and_xmp_wins_where_both_say(tmp_path: Path):
    path = _image(tmp_path / "legacy.jpg", "JPEG")
    write_tags(path, {"IPTC:CopyrightNotice": "© 1999 Old Owner", "IPTC:By-line": "Jon Legacy",
                      "IPTC:Credit": "Legacy Credit", "IPTC:Keywords": ["a", "b"]})
    only_iim = read_rights(path.read_bytes())
    assert (only_iim.copyright_notice, only_iim.creators, only_iim.credit, only_iim.keywords) == (
        "© 1999 Old Owner", ("Jon Legacy",), "Legacy Credit", ("a", "b"))
    assert only_iim.found_in == ("iim",)

    write_tags(path, {"XMP-dc:Rights": NOTICE})
    both = read_rights(path.read_bytes())
    assert both.copyright_notice == NOTICE and both.creators == ("Jon Legacy",)
    assert both.found_in == ("xmp", "iim")


def test_a_file_without_metadata_has_empty_rights(tmp_path: Path):
    rights = read_rights(_image(tmp_path / "plain.jpg", "JPEG").read_bytes())
    assert rights == RightsMetadata() and rights.empty


def test_a_malformed_packet_is_an_error_naming_it(tmp_path: Path):
    data = containers.put_xmp(_image(tmp_path / "x.jpg", "JPEG").read_bytes(), b"<x:xmpmeta><broken")
    with pytest.raises(RightsMetadataError, match="malformed XMP"):
        read_rights(data)


def test_iim_dataset_running_past_the_end_is_an_error():
    with pytest.raises(RightsMetadataError, match="2:116 runs past the end"):
        parse_rights_iim(bytes([0x1C, 2, 116, 0, 50]) + b"short")


@needs_exiftool
def test_our_iim_block_reads_back_in_exiftool_with_its_digest(tmp_path: Path):
    path = _image(tmp_path / "out.jpg", "JPEG")
    rights = RightsMetadata(copyright_notice=NOTICE, creators=("Jane Doe",), credit="Acme Photo", found_in=("xmp",))
    path.write_bytes(containers.put_iim(path.read_bytes(), rights_iim(rights)))

    tags = read_tags(path)

    assert tags["IPTC:CopyrightNotice"] == NOTICE and tags["IPTC:By-line"] == "Jane Doe"
    assert tags["IPTC:Credit"] == "Acme Photo"
    assert "Warning" not in tags  # exiftool checks the IPTCDigest against the block
    digests = read_tags(path, "IPTCDigest", "CurrentIPTCDigest")
    assert digests["Photoshop:IPTCDigest"] == digests["File:CurrentIPTCDigest"]


def test_publishable_keeps_the_published_rights_and_drops_catalog_only_facts():
    rights = RightsMetadata(copyright_notice=NOTICE, allowed_uses=("ai_edit",), category="pet", licence="L-1",
                            keywords=("k",), digital_source_type="x", found_in=("sidecar",))
    assert publishable(rights) == RightsMetadata(copyright_notice=NOTICE)
    assert publishable(RightsMetadata(category="pet", found_in=("sidecar",))) is None
