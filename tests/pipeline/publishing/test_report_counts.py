"""The report's counts tell what the source held and what the run took on, at the edges: an unchanged
catalog, images waiting for consent or refused by the rights check, a report from before discovery
was counted."""

from __future__ import annotations

from airflow_image_catalog.pipeline.publishing.publish import discovery_counts
from airflow_image_catalog.pipeline.publishing.report import found_phrase

RIGHTS = {"counts": {"go": 0, "needs_consent": 1, "refused": 0}}


def test_an_unchanged_catalog_is_found_not_empty():
    discovery = {"images": 0, "unchanged": 17, "refused_before": [{"image_id": f"r{i}"} for i in range(4)]}
    counts = discovery_counts(discovery, taken=0, rights=None)
    assert counts == {"found": 21, "changed": 0, "unchanged": 17, "refused_before": 4, "waiting_for_consent": 0,
                      "rights_refused": 0}
    assert found_phrase(counts) == "21 found, 0 new or changed (17 unchanged since published, 4 refused before)"


def test_images_held_or_refused_by_the_rights_check_are_found_and_changed_never_edit_failures():
    counts = discovery_counts({"images": 1, "unchanged": 13, "refused_before": [{}] * 4}, taken=0, rights=RIGHTS)
    assert (counts["found"], counts["changed"], counts["waiting_for_consent"]) == (18, 1, 1)
    assert found_phrase(counts).endswith("(13 unchanged since published, 4 refused before); 1 waits for consent")
    refused = {"counts": {"go": 2, "needs_consent": 2, "refused": 1}}
    counts = discovery_counts({"images": 5, "unchanged": 0, "refused_before": []}, taken=2, rights=refused)
    assert found_phrase(counts) == "5 found, 5 new or changed; 2 wait for consent, 1 refused by the rights check"


def test_without_a_discovery_summary_what_the_edit_took_on_and_the_rights_check_held_is_changed():
    counts = discovery_counts(None, taken=3, rights=RIGHTS)
    assert (counts["found"], counts["changed"], counts["unchanged"]) == (4, 4, 0)
    # a report written before "changed" existed: its "found" was what the edit took on
    assert found_phrase({"found": 3, "edited": 3}) == "3 found, 3 new or changed"
