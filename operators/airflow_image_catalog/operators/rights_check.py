"""RightsCheckOperator: the rights each source carries, checked before any money is spent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.workspace.layout import WorkspaceLayout


class RightsCheckOperator(ReportsLineage, BaseOperator):
    """Decide per image ``go`` / ``needs_consent`` / ``refused`` and hand on the ``go`` images' chunk manifests.

    Placed between discover and the cost check. Reads each source's IPTC rights (XMP and IIM) and the
    optional rights sidecar, looks for faces where the policy needs to know, and applies the policy:
    refused images are never priced or sent to a backend and are not tried again for the same bytes;
    images that need consent go to the consent queue (answered in the ``catalog_consent`` DAG) while
    this run goes on with the rest. Writes ``runs/<run>/rights/decision.json``; the XCom
    ``rights_decision`` carries the counts.

    :param chunk_manifest_uris: the discover task's output.
    :param workspace: run state root (the consent queue and the published manifest live there).
    :param recipe: the recipe the run applies (its ``rights`` field names the policy; its fingerprint is
        recorded with each refusal).
    :param rights_policy: a shipped policy name (``default``, ``strict``) or a policy file; empty: the
        recipe's, else ``default``.
    :param rights_sidecar: a CSV / JSON of image id -> licence, releases, expiry, allowed uses (empty: none).
    :param concurrency: images judged at once (people detection is CPU work).
    """

    lineage_function = "rights_check_lineage"
    template_fields: Sequence[str] = ("chunk_manifest_uris", "workspace", "recipe", "rights_policy", "rights_sidecar")

    def __init__(self, *, chunk_manifest_uris: Any, workspace: str, recipe: str, rights_policy: str | None = None,
                 rights_sidecar: str | None = None, concurrency: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uris = chunk_manifest_uris
        self.workspace = workspace
        self.recipe = recipe
        self.rights_policy = rights_policy
        self.rights_sidecar = rights_sidecar
        self.concurrency = concurrency

    def execute(self, context) -> list[str]:
        from airflow_image_catalog.pipeline.rights.check import check_run_rights, write_rights_audit
        from airflow_image_catalog.pipeline.rights.policy import load_policy
        from airflow_image_catalog.pipeline.rights.sidecar import load_sidecar
        from airflow_image_catalog.recipes import load_recipe

        recipe = load_recipe(self.recipe)
        policy = load_policy(self.rights_policy or recipe.rights)
        run = {"dag_id": self.dag_id, "run_id": context["run_id"], "task_id": self.task_id}
        check = check_run_rights(
            [uri for uri in (self.chunk_manifest_uris or []) if uri],
            workspace=self.workspace,
            run_root=WorkspaceLayout(self.workspace).run_for(context).root,
            policy=policy,
            sidecar=load_sidecar(self.rights_sidecar or None),
            recipe_fingerprint=recipe.fingerprint,
            run=run,
            concurrency=int(self.concurrency),
        )
        write_rights_audit(check.items, self.workspace, run=run)
        summary = check.summary
        context["ti"].xcom_push(key="rights_decision", value={k: summary[k] for k in ("images", "counts", "reasons")})
        counts = summary["counts"]
        self.log.info("rights check (policy %s): %d go, %d wait for consent, %d refused of %d images",
                      policy.name, counts["go"], counts["needs_consent"], counts["refused"], summary["images"])
        for item in check.items:
            if item["decision"] != "go":
                self.log.info("%s %s: %s", item["image_id"], item["decision"],
                              "; ".join(r["message"] for r in item["reasons"] if r["decision"] == item["decision"]))
        return check.chunk_uris
