"""The rights sidecar (a catalog's PIM export): CSV or JSON, the system of record over embedded metadata."""

from __future__ import annotations

import pytest

from airflow_image_catalog.pipeline.rights.metadata import RightsMetadata
from airflow_image_catalog.pipeline.rights.sidecar import SidecarError, parse_sidecar

CSV = b"""image_id,licence,licence_expires,allowed_uses,model_release_ids,category,copyright_notice
mug_blue,https://creativecommons.org/licenses/by/4.0/,2027-06-30,ai_edit; marketplace,MR-7;MR-8,Kitchen,\xc2\xa9 Shop
shoe_red,L-2,,,,,
"""


def test_csv_rows_become_rights_records():
    records = parse_sidecar(CSV, origin="rights.csv")
    mug = records["mug_blue"]
    assert mug.licence == mug.web_statement == "https://creativecommons.org/licenses/by/4.0/"
    assert mug.license_end_date == "2027-06-30" and mug.allowed_uses == ("ai_edit", "marketplace")
    assert mug.model_release_ids == ("MR-7", "MR-8") and mug.category == "kitchen"
    assert mug.copyright_notice == "© Shop" and mug.found_in == ("sidecar",)
    assert records["shoe_red"].licence == "L-2" and records["shoe_red"].web_statement is None


def test_json_list_or_object_keyed_by_image_id():
    as_list = parse_sidecar(b'[{"image_id": "a", "model_release_ids": ["MR-1"], "model_release_status": "MR-UMR"}]')
    as_object = parse_sidecar(b'{"a": {"model_release_ids": ["MR-1"], "model_release_status": "MR-UMR"}}')
    assert as_list == as_object
    assert as_list["a"].model_release_ids == ("MR-1",) and as_list["a"].model_release_status == "MR-UMR"


def test_the_sidecar_wins_over_embedded_metadata():
    embedded = RightsMetadata(copyright_notice="© Photographer", credit="Studio", found_in=("xmp",))
    sidecar = parse_sidecar(b"image_id,copyright_notice\na,\xc2\xa9 Shop\n")["a"]
    merged = embedded.overridden_by(sidecar)
    assert merged.copyright_notice == "© Shop" and merged.credit == "Studio"
    assert merged.found_in == ("sidecar", "xmp")


@pytest.mark.parametrize(("data", "message"), [
    (b"id,licence\na,b\n", "rights.csv: the CSV header must name an image_id column"),
    (b"image_id,licence_expires\na,31/12/2026\n", "rights.csv: row 2: licence_expires: not a YYYY-MM-DD date"),
    (b"image_id,licence,colour\na,b,red\n", "rights.csv: row 2: unknown column 'colour'"),
    (b"image_id\na\na\n", "rights.csv: row 3: image_id: 'a' appears twice"),
    (b'[{"image_id": "a",]', "rights.csv: not valid JSON"),
])
def test_bad_rows_name_the_row_and_the_column(data: bytes, message: str):
    with pytest.raises(SidecarError, match=message):
        parse_sidecar(data, origin="rights.csv")
