"""ImageEditOperator: edit one chunk of images with a recipe through a backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, conf

from airflow_image_catalog.config.params import as_bool
from airflow_image_catalog.hooks.image_edit import ImageEditHook
from airflow_image_catalog.lineage.mixin import ReportsLineage
from airflow_image_catalog.links.run_page import EditReportLink


def edit_facts(task: BaseOperator, context=None) -> dict[str, Any]:
    """Which task instance edits (the ledger and the records say it): the edit task's, or the escalation's."""
    ti = (context or {}).get("ti")
    return {"dag_id": task.dag_id, "task_id": task.task_id, "run_id": (context or {}).get("run_id"),
            "map_index": getattr(ti, "map_index", None), "try_number": getattr(ti, "try_number", None)}


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
        """The chunk's :class:`~airflow_image_catalog.pipeline.editing.chunk.ChunkRun`
        (see :func:`~airflow_image_catalog.pipeline.editing.task.load_chunk_run`)."""
        from airflow_image_catalog.pipeline.editing.task import load_chunk_run

        return load_chunk_run(self.chunk_manifest_uri, self.recipe, self.workspace, self.hook.get_backend,
                              facts=self._facts(context), concurrency=self._concurrency(),
                              use_cache=as_bool(self.use_cache, "use_cache"))

    def _facts(self, context=None) -> dict[str, Any]:
        return edit_facts(self, context)

    def _concurrency(self) -> int | None:
        return int(self.concurrency) if self.concurrency not in (None, "", "None") else None

    def execute(self, context) -> str:
        from airflow_image_catalog.pipeline.editing.routed import edit_routed_chunk
        from airflow_image_catalog.pipeline.editing.task import (
            edit_inline,
            finish_routed,
            start_or_resume_jobs,
            uses_jobs,
        )

        routed = edit_routed_chunk(self.chunk_manifest_uri, self.recipe, self.workspace, self.hook.get_backend,
                                   facts=self._facts(context), concurrency=self._concurrency(),
                                   use_cache=as_bool(self.use_cache, "use_cache"))
        if routed is not None:  # the cost check routed the run: each image on its candidate
            self.log.info("chunk %d: routed over %s", routed.chunk_index, routed.model)
            return self._finish_with(lambda m, rate: finish_routed(m, rate, workspace=self.workspace), routed)
        run = self._load(context)
        self.log.info(
            "chunk %d: %d images, recipe %s (%d steps), backend %s, %d in flight",
            run.chunk.chunk_index, len(run.chunk.items), run.recipe.name, len(run.recipe.steps), run.backend.model,
            run.concurrency,
        )
        if uses_jobs(run, self.is_deferrable):
            return self._defer_or_finish(start_or_resume_jobs(run, self.job_timeout.total_seconds()), run)
        return self._finish(edit_inline(run), run)

    def _defer_or_finish(self, state: dict, run) -> str:
        """Defer to the trigger until no job is pending; not deferrable: poll from this worker."""
        from airflow_image_catalog.pipeline.editing.jobs import finish_jobs
        from airflow_image_catalog.pipeline.editing.task import advance, pending_jobs, save_jobs
        from airflow_image_catalog.triggers.edit_jobs import EditJobsTrigger, first_event

        while True:
            save_jobs(run, state)  # job ids persist before any wait
            if not state["pending"]:
                return self._finish(finish_jobs(state, run), run)
            jobs = pending_jobs(state)
            trigger = EditJobsTrigger(self.backend_conn_id, jobs, poll_interval=self.poll_interval,
                                      deadline=state["deadline"], overrides=run.overrides)
            if self.is_deferrable:
                self.log.info("chunk %d: %d jobs pending; deferring", run.chunk.chunk_index, len(jobs))
                self.defer(trigger=trigger, method_name="execute_complete",
                           timeout=timedelta(seconds=max(state["deadline"] - time.time(), 0) + 600))
            self.log.info("chunk %d: %d jobs pending; polling from the worker", run.chunk.chunk_index, len(jobs))
            event = asyncio.run(first_event(trigger))
            state = advance(run, state, event["results"])

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> str:
        from airflow_image_catalog.pipeline.editing.task import advance
        from airflow_image_catalog.triggers.events import validate_execute_complete_event

        event = validate_execute_complete_event(event, trigger="EditJobsTrigger")  # success or timeout
        run = self._load(context)
        return self._defer_or_finish(advance(run, None, event["results"]), run)

    def _finish(self, manifest, run) -> str:
        """The edit manifest's URI; the task fails (no retries) where the chunk's policy says so."""
        from airflow_image_catalog.pipeline.editing.task import finish_chunk

        return self._finish_with(lambda m, rate: finish_chunk(m, run, rate), manifest)

    def _finish_with(self, finish, manifest) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_image_catalog.pipeline.editing.task import ChunkFailed

        try:
            return finish(manifest, float(self.max_failure_rate))
        except ChunkFailed as failed:
            raise AirflowFailException(str(failed)) from failed

    def on_kill(self) -> None:
        """Cancel the chunk's recorded jobs where the provider allows."""
        from airflow_image_catalog.pipeline.editing.task import cancel_jobs

        cancel_jobs(self._load())
