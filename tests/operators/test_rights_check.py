"""RightsCheckOperator: the rights check's plain function behind Airflow's task surface (XCom, templates,
the recipe's rights policy, a sidecar)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from airflow_image_catalog.operators.rights_check import RightsCheckOperator
from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def _chunks(tmp_path: Path, run_key: str) -> list[str]:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("mug", "shoe"):
        buffer = io.BytesIO()
        Image.new("RGB", (120, 120), (240, 240, 240)).save(buffer, "JPEG")
        (source / f"{name}.jpg").write_bytes(buffer.getvalue())
    return write_chunk_manifests(discover_images(str(source)), run_root=str(tmp_path / "work" / "runs" / run_key),
                                 run_key=run_key, chunk_size=10)


@pytest.mark.parametrize("policy, expected", [("", {"go": 1, "needs_consent": 0, "refused": 1}),
                                              ("strict", {"go": 1, "needs_consent": 1, "refused": 0})])
def test_the_sidecar_and_the_policy_decide_and_only_go_images_are_handed_on(tmp_path: Path, policy, expected):
    uris = _chunks(tmp_path, "run1")
    sidecar = tmp_path / "rights.csv"  # shoe: no AI allowed; mug: the strict policy wants metadata: it has some
    sidecar.write_text("image_id,usage_terms,allowed_uses\nshoe,,web\nmug,Edits permitted,ai_edit\n")
    if policy == "strict":
        sidecar.write_text("image_id,usage_terms\nmug,Edits permitted\n")
    op = RightsCheckOperator(task_id="rights_check", chunk_manifest_uris=uris, workspace=str(tmp_path / "work"),
                             recipe="marketplace_white_square", rights_policy=policy, rights_sidecar=str(sidecar))
    ti = _TI()

    handed_on = op.execute({"run_id": "run1", "ti": ti})

    assert ti.pushed["rights_decision"]["counts"] == expected
    assert len(handed_on) == 1 and handed_on[0].endswith("/chunks/rights/chunk-00000.json")
    assert "rights_policy" in op.template_fields and "rights_sidecar" in op.template_fields
