"""One run's rights check: the go images handed on, refusals remembered for their bytes, a face without a
release queued for consent, and the consent answer deciding the next run."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from airflow_image_catalog.imaging import containers
from airflow_image_catalog.pipeline.discovery.discover import discover_images, write_chunk_manifests
from airflow_image_catalog.pipeline.rights import consent
from airflow_image_catalog.pipeline.rights.check import check_run_rights
from airflow_image_catalog.pipeline.rights.policy import load_policy
from airflow_image_catalog.storage import read_json_if_exists
from airflow_image_catalog.workspace.layout import WorkspaceLayout
from airflow_image_catalog.workspace.manifest import ChunkManifest

NO_AI_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             b'<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" plus:DataMining='
             b'"http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"/></rdf:RDF></x:xmpmeta>')


def _source(tmp_path: Path) -> Path:
    from skimage import data

    source = tmp_path / "source"
    source.mkdir()
    Image.fromarray(data.astronaut()).save(source / "astronaut.jpg")  # a frontal face, no release on record
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (240, 240, 240)).save(buffer, "JPEG")
    (source / "plain.jpg").write_bytes(buffer.getvalue())
    (source / "no_ai.jpg").write_bytes(containers.put_xmp(buffer.getvalue(), NO_AI_XMP))
    return source


def _check(source: Path, workspace: Path, run: str, recipe: str = "r" * 64):
    found = discover_images(str(source), refused=(read_json_if_exists(
        WorkspaceLayout(str(workspace)).published_manifest) or {}).get("failed_final"), recipe_fingerprint=recipe)
    run_root = str(workspace / "runs" / run)
    uris = write_chunk_manifests(found, run_root=run_root, run_key=run, chunk_size=10)
    return check_run_rights(uris, workspace=str(workspace), run_root=run_root, policy=load_policy("default"),
                            recipe_fingerprint=recipe, run={"run_id": run})


def _handed_on(check) -> set[str]:
    return {item.image_id for uri in check.chunk_uris
            for item in ChunkManifest.from_dict(json.loads(Path(uri[len("file://"):]).read_text())).items}


def test_go_refused_and_waiting_for_consent(tmp_path: Path):
    source, workspace = _source(tmp_path), tmp_path / "work"

    check = _check(source, workspace, "run1")

    decided = {item["image_id"]: item for item in check.items}
    assert {k: v["decision"] for k, v in decided.items()} == {
        "astronaut": "needs_consent", "plain": "go", "no_ai": "refused"}
    assert _handed_on(check) == {"plain"}
    assert decided["no_ai"]["reasons"][0]["code"] == "ai_use_prohibited"
    assert decided["astronaut"]["people"]["faces"] == 1
    assert check.summary["counts"] == {"go": 1, "needs_consent": 1, "refused": 1}
    assert [r["image_id"] for r in consent.pending_consents(str(workspace))] == ["astronaut"]


def test_approval_lets_the_next_run_edit_and_a_refusal_is_never_asked_again(tmp_path: Path):
    source, workspace = _source(tmp_path), tmp_path / "work"
    _check(source, workspace, "run1")
    pending = consent.pending_consents(str(workspace))

    answer = consent.apply_consent(pending, approve_ids={"astronaut"}, reviewer="rights.desk", note="release MR-42",
                                   workspace=str(workspace), run={"run_id": "consent1"})
    assert answer["approved"] == 1 and answer["rejected"] == 0

    check = _check(source, workspace, "run2")
    decided = {item["image_id"]: item for item in check.items}
    assert set(decided) == {"astronaut", "plain"}  # no_ai: refused for these bytes, discovery skips it
    assert decided["astronaut"]["decision"] == "go" and decided["astronaut"]["consent"]["by"] == "rights.desk"
    assert decided["astronaut"]["reasons"][-1]["code"] == "consent_granted"
    assert _handed_on(check) == {"astronaut", "plain"}


def test_a_rejection_is_final_for_those_bytes(tmp_path: Path):
    source, workspace = _source(tmp_path), tmp_path / "work"
    _check(source, workspace, "run1")
    consent.apply_consent(consent.pending_consents(str(workspace)), approve_ids=set(), reviewer="rights.desk",
                          note="no release", workspace=str(workspace), run={"run_id": "consent1"})

    check = _check(source, workspace, "run2")

    assert {item["image_id"] for item in check.items} == {"plain"}
    assert consent.pending_consents(str(workspace)) == []
