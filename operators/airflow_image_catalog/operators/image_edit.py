"""ImageEditOperator: edit one chunk of images with a recipe through a backend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, conf

from airflow_image_catalog.config.params import as_bool
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.links.run_page import EditReportLink

FATAL_CODES = ("insufficient_credits",)  # the account cannot pay: alert, do not retry
class ImageEditOperator(ReportsLineage, BaseOperator):
    """Edit every image of a chunk manifest and write the outputs and an edit manifest.

    Meant to be mapped over the chunk manifests a discover task returns
    (``ImageEditOperator.partial(...).expand(chunk_manifest_uri=discover.output)``).
    Each image ends ``edited`` or ``failed`` with a reason (and the provider's error
    code, and whether a rerun may help); one bad image never fails the chunk. An
    account out of credits (HTTP 402) fails the task without retries, after the
    manifest is written, so the failure alerts. Returns the edit manifest's URI.

    With ``deferrable=True`` and an asynchronous provider (``bfl``), the operator
    submits the chunk's jobs, records their ids in ``runs/<run>/jobs/chunk-NNNNN.json``
    and defers to :class:`~airflow_image_catalog.triggers.edit_jobs.EditJobsTrigger`; it resumes
    to download results and submit the next recipe step. A rerun resumes the recorded
    jobs instead of submitting (and paying for) them again.

    :param chunk_manifest_uri: URI of the chunk manifest to edit.
    :param recipe: a shipped recipe name or the path / URI of a recipe file.
    :param workspace: URI prefix where run state lives.
    :param backend_conn_id: ``image_edit`` connection that selects the backend.
    :param deferrable: poll asynchronous providers from the triggerer (default:
        ``[operators] default_deferrable``). Templated: a bool, or a string such as
        ``"{{ params.deferrable }}"`` that renders to ``True`` / ``False`` at runtime.
    :param poll_interval: seconds between polls of pending jobs (deferrable mode).
    :param job_timeout: how long a chunk's jobs may run before the outstanding ones are
        cancelled (where the provider allows) and fail as retryable.
    :param concurrency: images of the chunk in flight at once (default: the connection's
        ``max_concurrency`` for network backends, the CPU count for the local engine).
    :param max_failure_rate: the task fails when more than this share of the chunk's images
        failed finally (``failed_final``); below it, it succeeds and reports the failures.
    :param use_cache: reuse results from the workspace's content-addressed cache.
    """

    lineage_function = "edit_lineage"
    operator_extra_links = (EditReportLink(),)
    template_fields: Sequence[str] = (
        "chunk_manifest_uri", "recipe", "workspace", "backend_conn_id", "deferrable", "concurrency",
        "max_failure_rate",
    )

    def __init__(
        self,
        *,
        chunk_manifest_uri: str,
        recipe: str,
        workspace: str,
        backend_conn_id: str = ImageEditHook.default_conn_name,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        job_timeout: timedelta = timedelta(hours=1),
        concurrency: int | str | None = None,
        max_failure_rate: float | str = 0.5,
        use_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.chunk_manifest_uri = chunk_manifest_uri
        self.recipe = recipe
        self.workspace = workspace
        self.backend_conn_id = backend_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.concurrency = concurrency
        self.max_failure_rate = max_failure_rate
        self.use_cache = use_cache

    @property
    def is_deferrable(self) -> bool:
        """``deferrable`` as rendered at runtime (templates render to strings)."""
        return as_bool(self.deferrable, "deferrable")

    @cached_property
    def hook(self) -> ImageEditHook:
        return ImageEditHook(image_edit_conn_id=self.backend_conn_id)

    def _load(self, context=None):
        """The chunk's :class:`~airflow_image_catalog.pipeline.editing.chunk.ChunkRun`: chunk, recipe, backend, run root, cache, ledger.

        The cost check's decision (``runs/<run>/cost/decision.json``), when there is one, brings
        the downgrade's overrides, the per-image estimate and the run's budget for the mid-run guard.
        """
        from airflow_image_catalog.pipeline.costing.decision import BudgetGuard
        from airflow_image_catalog.pipeline.costing.ledger import Ledger
        from airflow_image_catalog.pipeline.editing.chunk import ChunkRun
        from airflow_image_catalog.recipes import load_recipe
        from airflow_image_catalog.storage import read_json, storage_for
        from airflow_image_catalog.workspace.layout import WorkspaceLayout
        from airflow_image_catalog.workspace.manifest import ChunkManifest

        chunk = ChunkManifest.from_dict(read_json(self.chunk_manifest_uri))
        layout = WorkspaceLayout(self.workspace).run(chunk.run_key)
        run_root = layout.root
        uri = layout.cost_decision
        decision = read_json(uri) if storage_for(uri).exists(uri) else {}
        backend = self.hook.get_backend(decision.get("overrides"))
        ledger = Ledger(self.workspace) if backend.capabilities.paid else None  # the local engine is free
        guard = None
        if ledger is not None and decision.get("available_usd") is not None:
            guard = BudgetGuard(float(decision["available_usd"]), lambda: ledger.run_spend(chunk.run_key))
        ti = (context or {}).get("ti")
        facts = {"dag_id": self.dag_id, "task_id": self.task_id, "run_id": (context or {}).get("run_id"),
                 "map_index": getattr(ti, "map_index", None), "try_number": getattr(ti, "try_number", None)}
        concurrency = int(self.concurrency) if self.concurrency not in (None, "", "None") else None
        return ChunkRun(chunk, load_recipe(self.recipe), backend, run_root,
                        workspace=self.workspace if as_bool(self.use_cache, "use_cache") else None,
                        concurrency=concurrency, ledger=ledger, facts=facts,
                        estimate_usd=decision.get("per_image_usd"), guard=guard,
                        overrides=decision.get("overrides") or {})

    @staticmethod
    def _jobs_uri(run) -> str:
        return run.layout.jobs(run.chunk.chunk_index)

    def execute(self, context) -> str:
        import asyncio

        from airflow_image_catalog.pipeline.editing.chunk import aedit_chunk, new_manifest

        run = self._load(context)
        self.log.info(
            "chunk %d: %d images, recipe %s (%d steps), backend %s, %d in flight",
            run.chunk.chunk_index, len(run.chunk.items), run.recipe.name, len(run.recipe.steps), run.backend.model,
            run.concurrency,
        )
        can = run.backend.capabilities
        if (self.is_deferrable and can.jobs) or can.jobs_only:
            return self._run_jobs(run)
        return self._finish(new_manifest(run.chunk, run.recipe, run.backend, asyncio.run(aedit_chunk(run))), run)

    def _run_jobs(self, run) -> str:
        import asyncio
        import time

        from airflow_image_catalog.pipeline.editing.chunk import start_jobs
        from airflow_image_catalog.storage import read_json, storage_for

        uri = self._jobs_uri(run)
        state = read_json(uri) if storage_for(uri).exists(uri) else None
        if state is not None and state["pending"]:  # a retry resumes the recorded jobs
            self.log.info("resuming %d recorded jobs of chunk %d", len(state["pending"]), run.chunk.chunk_index)
        else:  # first try, or a rerun after the jobs ended: finals kept, retryable failures redone (per-image state)
            state = asyncio.run(start_jobs(run))
            # a batch backend's completion window (24 h) outlasts a shorter job_timeout
            timeout = max(self.job_timeout.total_seconds(), run.backend.capabilities.job_timeout_s)
            state["deadline"] = time.time() + timeout
        return self._defer_or_finish(state, run)

    def _defer_or_finish(self, state: dict, run) -> str:
        """Defer to the trigger until no job is pending; not deferrable: poll from this worker."""
        import asyncio
        import time

        from airflow_image_catalog.pipeline.editing.chunk import advance_jobs, finish_jobs
        from airflow_image_catalog.storage import write_json
        from airflow_image_catalog.triggers.edit_jobs import EditJobsTrigger, first_event

        while True:
            write_json(self._jobs_uri(run), state)  # job ids persist before any wait
            if not state["pending"]:
                return self._finish(finish_jobs(state, run), run)
            jobs = {key: entry["job"] for key, entry in state["pending"].items()}
            trigger = EditJobsTrigger(self.backend_conn_id, jobs, poll_interval=self.poll_interval,
                                      deadline=state["deadline"], overrides=run.overrides)
            if self.is_deferrable:
                self.log.info("chunk %d: %d jobs pending; deferring", run.chunk.chunk_index, len(jobs))
                self.defer(trigger=trigger, method_name="execute_complete",
                           timeout=timedelta(seconds=max(state["deadline"] - time.time(), 0) + 600))
            self.log.info("chunk %d: %d jobs pending; polling from the worker", run.chunk.chunk_index, len(jobs))
            event = asyncio.run(first_event(trigger))
            state = asyncio.run(advance_jobs(state, event["results"], run))

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> str:
        import asyncio

        from airflow_image_catalog.pipeline.editing.chunk import advance_jobs
        from airflow_image_catalog.storage import read_json
        from airflow_image_catalog.triggers.events import validate_execute_complete_event

        event = validate_execute_complete_event(event, trigger="EditJobsTrigger")  # success or timeout
        run = self._load(context)
        state = read_json(self._jobs_uri(run))
        state = asyncio.run(advance_jobs(state, event["results"], run))
        return self._defer_or_finish(state, run)

    def _finish(self, manifest, run) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_image_catalog.storage import write_json
        from airflow_image_catalog.workspace.manifest import ImageStatus

        uri = write_json(run.layout.edit(manifest.chunk_index), manifest.to_dict())
        counts = manifest.counts()
        hits = sum(r.cache_hit for r in manifest.items)
        self.log.info("chunk %d done: %s (%d from the result cache); manifest %s", manifest.chunk_index, counts,
                      hits, uri)
        fatal = [r for r in manifest.items if r.error_code in FATAL_CODES]
        if fatal:
            raise AirflowFailException(f"{manifest.backend}: {fatal[0].error_code} ({len(fatal)} images not edited): "
                                       f"{fatal[0].error}; manifest {uri}")
        failed, total = counts.get(ImageStatus.FAILED_FINAL, 0), len(manifest.items)
        if total and failed / total > float(self.max_failure_rate):
            raise AirflowFailException(
                f"chunk {manifest.chunk_index}: {failed} of {total} images failed finally, more than the allowed "
                f"{float(self.max_failure_rate):.0%}; manifest {uri}")
        return uri

    def on_kill(self) -> None:
        """Cancel the chunk's recorded jobs where the provider allows."""
        import asyncio

        from airflow_image_catalog.storage import StorageError, read_json

        run = self._load()
        backend = run.backend
        try:
            pending = read_json(self._jobs_uri(run))["pending"]
        except StorageError:
            return

        async def cancel_all():
            try:
                await asyncio.gather(*(backend.acancel(e["job"]) for e in pending.values()), return_exceptions=True)
            finally:
                await backend.transport.aclose()

        if pending and backend.capabilities.jobs:
            asyncio.run(cancel_all())
