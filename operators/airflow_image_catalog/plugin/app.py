"""The plugin's FastAPI app, mounted by the Airflow api-server at ``/image-catalog``.

Every route sits behind Airflow's own authentication (the api-server's auth manager: the UI's
``_token`` cookie or an ``Authorization: Bearer`` JWT) and its authorization: reading needs read
access to the ``catalog_refresh`` DAG, deciding needs write access to ``catalog_review``'s
human-in-the-loop details. A browser without a session is sent to Airflow's login page.
Files are served only from the configured storage roots (:mod:`airflow_image_catalog.plugin.files`).

Configuration (``airflow.cfg`` section ``[image_catalog]`` or ``AIRFLOW__IMAGE_CATALOG__*``):
``workspace``, ``published`` (default: ``$CATALOG_HOME/work`` and ``/published``, as the DAGs),
``sources`` (``name=uri`` pairs, comma separated; default ``source=$CATALOG_HOME/samples``),
``refresh_dag_id`` and ``review_dag_id``.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, which name locals
import re
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from sqlalchemy import select

from airflow_image_catalog.config.locations import catalog_location
from airflow_image_catalog.pipeline.quality.review import APPROVE_ALL, APPROVE_LISTED, REJECT_ALL
from airflow_image_catalog.plugin import data, pages
from airflow_image_catalog.plugin.files import (
    RefusedPath,
    StorageRoots,
    media_type,
    resolve,
    resolve_run_source,
)
from airflow_image_catalog.storage import StorageError, read_bytes

if TYPE_CHECKING:
    from fastapi import FastAPI

    from airflow_image_catalog.plugin.files import StorageRoots

SECTION = "image_catalog"


def configured_roots() -> "StorageRoots":
    """The storage roots from Airflow's configuration, defaulting to the DAGs' embedded defaults."""
    from airflow.configuration import conf


    sources: dict[str, str] = {}
    text = conf.get(SECTION, "sources", fallback=None)
    entries = [e.strip() for e in (text if text is not None else f"source={catalog_location('samples')}").split(",")]
    for n, entry in enumerate(e for e in entries if e):
        named = re.match(r"([a-z][a-z0-9_-]{0,31})=(.+)", entry)  # "name=uri"; a bare URI is "source", "source1", ...
        name, uri = named.groups() if named else (f"source{n or ''}", entry)
        sources[name] = uri.strip()
    return StorageRoots(workspace=conf.get(SECTION, "workspace", fallback=catalog_location("work")),
                        published=conf.get(SECTION, "published", fallback=catalog_location("published")),
                        sources=sources)


def create_app(roots: "StorageRoots | None" = None) -> "FastAPI":
    """Build the app (called once, when the api-server first asks the plugin for it)."""
    from airflow.api_fastapi.app import API_ROOT_PATH, get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.common.db.common import SessionDep
    from airflow.api_fastapi.core_api.security import GetUserDep
    from airflow.configuration import conf
    from fastapi import Depends, FastAPI, Form, HTTPException, Request, status
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response


    refresh_dag = conf.get(SECTION, "refresh_dag_id", fallback="catalog_refresh")
    review_dag = conf.get(SECTION, "review_dag_id", fallback="catalog_review")
    fixed_roots = roots

    app = FastAPI(title="Image catalog", docs_url=None, redoc_url=None, openapi_url=None)

    def storage() -> "StorageRoots":
        return fixed_roots or configured_roots()

    def links(request: Request) -> pages.Links:
        return pages.Links(prefix=request.scope.get("root_path", "").rstrip("/"), roots=storage(),
                           ui_base=API_ROOT_PATH.rstrip("/"))

    def allowed(user: Any, method: str, dag_id: str, entity: Any = None) -> None:
        if not get_auth_manager().is_authorized_dag(method=method, access_entity=entity,
                                                    details=DagDetails(id=dag_id), user=user):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    def reader(user: GetUserDep) -> Any:
        """Anyone who may read the catalog DAG's runs may read the catalog pages."""
        allowed(user, "GET", refresh_dag)
        return user

    def reviewer(user: GetUserDep) -> Any:
        """Deciding on an image is answering the review DAG's human-in-the-loop step."""
        allowed(user, "PUT", review_dag, DagAccessEntity.HITL_DETAIL)
        return user

    Reader = Annotated[Any, Depends(reader)]
    Reviewer = Annotated[Any, Depends(reviewer)]

    @app.exception_handler(HTTPException)
    async def _to_login(request: Request, exc: HTTPException) -> Response:
        """A browser without a (valid) session goes to Airflow's login page and comes back."""
        unauthenticated = exc.status_code == 401 or exc.detail == "Invalid JWT token"
        if unauthenticated and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)),
                                    status_code=status.HTTP_307_TEMPORARY_REDIRECT)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    def page(body: str) -> HTMLResponse:
        return HTMLResponse(body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.get("/", response_class=HTMLResponse)
    def catalog(request: Request, user: Reader) -> HTMLResponse:
        where = storage()
        runs = data.recent_runs(where.workspace)
        budgets = next((r["budgets"] for r in runs if r["budgets"]), {})
        budget = data.budget_usage(where.workspace, budgets)
        return page(pages.catalog_page(runs, budget, links(request), user=user.get_name()))

    @app.get("/runs/{run_key}", response_class=HTMLResponse)
    def run(run_key: str, request: Request, user: Reader) -> HTMLResponse:
        detail = data.run_detail(storage().workspace, run_key)
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no catalog run {run_key!r} in the workspace")
        return page(pages.run_page(detail, links(request), user=user.get_name()))

    def served(find: Any) -> Response:
        try:
            uri = find()
            body = read_bytes(uri)
        except (RefusedPath, StorageError, OSError):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found") from None
        # served documents run sandboxed (an opaque origin): a report cannot act with the user's session
        return Response(body, media_type=media_type(uri), headers={
            "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"})

    @app.get("/files/run-source/{run_key}/{image_id}")
    def run_source(run_key: str, image_id: str, user: Reader) -> Response:
        """An image before its edit, as the run read it (only that run's images, by id)."""
        return served(lambda: resolve_run_source(storage().workspace, run_key, image_id))

    @app.get("/files/{root}/{path:path}")
    def files(root: str, path: str, user: Reader) -> Response:
        return served(lambda: resolve(storage(), root, path))

    def waiting(session: Any, workspace: str, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Review runs parked on their human-in-the-loop step, with the pending records they asked about."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        open_uris = {r["record_uri"] for r in pending}
        tis = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == review_dag, TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).all()
        found = []
        for ti in tis:
            shown = data.shown_to(workspace, ti.run_id, ti.task_id) & open_uris
            if shown:
                found.append({"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                              "map_index": ti.map_index, "shown": shown})
        return found

    @app.get("/review", response_class=HTMLResponse)
    def review(request: Request, session: SessionDep, user: Reader,
               flash: str = "", error: str = "") -> HTMLResponse:
        workspace = storage().workspace
        queue = data.review_queue(workspace)
        return page(pages.review_page(queue, waiting(session, workspace, queue["pending"]), links(request),
                                      user=user.get_name(), flash=flash[:300], error=error[:300]))

    def back(request: Request, **message: str) -> RedirectResponse:
        prefix = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{prefix}/review?{urlencode(message)}", status_code=status.HTTP_303_SEE_OTHER)

    @app.post("/review/hitl")
    def answer_run(request: Request, session: SessionDep, user: Reviewer,
                   dag_id: Annotated[str, Form()], run_id: Annotated[str, Form()], task_id: Annotated[str, Form()],
                   approve_ids: Annotated[list[str] | None, Form()] = None, note: Annotated[str, Form()] = "") -> RedirectResponse:
        """Answer a waiting review run exactly as the Core API's human-in-the-loop endpoint does."""
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail


        if dag_id != review_dag:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not the review DAG: {dag_id!r}")
        workspace = storage().workspace
        queue = data.review_queue(workspace)
        asked = next((w for w in waiting(session, workspace, queue["pending"])
                      if w["run_id"] == run_id and w["task_id"] == task_id), None)
        if asked is None:
            return back(request, error=f"review run {run_id} no longer waits for a decision")
        shown_ids = {r["image_id"] for r in queue["pending"] if r["record_uri"] in asked["shown"]}
        chosen = set(approve_ids or []) & shown_ids
        option = APPROVE_ALL if chosen == shown_ids else REJECT_ALL if not chosen else APPROVE_LISTED
        payload = UpdateHITLDetailPayload(chosen_options=[option],
                                          params_input={"approve_ids": ",".join(sorted(chosen)), "note": note})
        try:
            update_hitl_detail(dag_id=dag_id, dag_run_id=run_id, task_id=task_id, map_index=asked["map_index"],
                               update_hitl_detail_payload=payload, user=user, session=session)
        except HTTPException as exc:
            return back(request, error=f"the review run did not take the answer: {exc.detail}")
        return back(request, flash=f"answered review run {run_id}: {option} ({len(chosen)} approved); "
                                   "the run publishes and records the decisions when it resumes")

    @app.post("/review/{run_key}/{image_id}")
    def decide(run_key: str, image_id: str, request: Request, session: SessionDep,
               user: Reviewer, decision: Annotated[str, Form()], note: Annotated[str, Form()] = "") -> Response:
        """Decide one image no review run waits for: recorded (and published) right away."""
        if decision not in ("approve", "reject"):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "decision must be approve or reject")
        where = storage()
        queue = data.review_queue(where.workspace)
        in_run = {uri for w in waiting(session, where.workspace, queue["pending"]) for uri in w["shown"]}
        record = next((r for r in queue["pending"] if r.get("run_key") == run_key and r["image_id"] == image_id), None)
        if record is not None and record["record_uri"] in in_run:
            return back(request, error=f"{image_id} is part of a waiting review run: answer that run")
        try:
            result = data.record_decision(where.workspace, where.published, run_key=run_key, image_id=image_id,
                                          approve=decision == "approve", reviewer=str(user.get_name()), note=note)
        except LookupError as exc:
            return back(request, error=str(exc))
        verb = result["review"]["decision"]
        published = f", published as {result['published']}" if result["published"] else ""
        return back(request, flash=f"{image_id} {verb} by {result['review']['by']}{published}")

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, user: Reader, q: str = "") -> HTMLResponse:
        result, error = None, ""
        if q.strip():
            try:
                result = data.search_audit(storage().workspace, q[:500])
            except Exception as exc:  # a broken store or query shows as a message, not a 500 page
                error = f"audit search failed: {exc}"
        return page(pages.audit_page(result or {"query": q}, links(request), user=user.get_name(), error=error))

    @app.get("/lineage/schemas/{version}/{name}.json")
    def facet_schema(version: str, name: str) -> Response:
        """A custom OpenLineage facet's schema, as the package ships it: public (no session), like any
        schema a lineage consumer resolves from a ``_schemaURL``; immutable per version."""
        from airflow_image_catalog.lineage import schema_document

        body = schema_document(version, name)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such facet schema")
        return Response(body, media_type="application/schema+json", headers={
            "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"})

    @app.get("/lineage/{version}")
    def lineage_producer(version: str) -> dict[str, Any]:
        """What a custom facet's ``_producer`` names: this package at its version, the facets it emits."""
        from airflow_image_catalog.lineage import producer_document

        document = producer_document()
        if version != document["version"]:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"this api-server runs version {document['version']}")
        return document

    @app.get("/health")
    def health() -> dict[str, str]:
        """Unauthenticated liveness of the mounted app (no data)."""
        return {"status": "ok"}

    return app
