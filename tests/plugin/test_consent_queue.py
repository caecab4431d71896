"""The review queue page lists the images waiting for consent, with why and what the rights check found."""

from __future__ import annotations

from pathlib import Path

from airflow_image_catalog.pipeline.rights import consent
from airflow_image_catalog.plugin import data, pages
from airflow_image_catalog.plugin.files import StorageRoots


def test_images_waiting_for_consent_are_listed_with_the_finding(tmp_path: Path):
    workspace = str(tmp_path / "work")
    item = {"image_id": "model_shot", "source_uri": str(tmp_path / "model_shot.jpg"), "source_sha256": "a" * 64,
            "reasons": [{"code": "no_model_release", "decision": "needs_consent",
                         "message": "1 face found and no model release on record"}],
            "rights": {"copyright_notice": "© Shop Ltd", "usage_terms": "Editorial use only"},
            "people": {"faces": 1}, "policy": "default"}
    consent.request_consent(workspace, item, run_key="run1", recipe_fingerprint="f" * 64)

    queue = data.review_queue(workspace)
    html = pages.review_page(queue, [], pages.Links("/catalog", StorageRoots(workspace, str(tmp_path / "pub"))))

    assert [r["image_id"] for r in queue["consent"]] == ["model_shot"]
    assert "Waiting for consent (1)" in html and 'data-consent="model_shot"' in html
    assert "1 face found and no model release on record" in html and "© Shop Ltd" in html
    assert "catalog_consent" in html
    # the source lies under no configured root: the run that asked serves it (only its own images, by id)
    assert '<a href="/catalog/files/run-source/run1/model_shot" target="_blank" rel="noopener">source</a>' in html

    consent.apply_consent(queue["consent"], approve_ids=None, reviewer="desk", note="", workspace=workspace,
                          run={"run_id": "c1"})
    assert data.review_queue(workspace)["consent"] == []
    assert "Waiting for consent" not in pages.review_page(
        data.review_queue(workspace), [], pages.Links("/catalog", StorageRoots(workspace, str(tmp_path / "pub"))))
