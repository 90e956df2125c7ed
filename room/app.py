"""The review room's web app: the queue, a project's review page, its clips over HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from clipgate.errors import AnswerRefused, InputError
from clipgate.gate import audit
from clipgate.links import review_page_url
from clipgate.models import AnswerSource
from clipgate.settings import Settings
from clipgate.storage.r2 import R2Storage
from clipgate.store import Store
from clipgate.wiring import build_storage, build_store
from room.access import CSRF_HEADER, Access
from room.views import ProjectView, media_file, project_view, queue

if TYPE_CHECKING:
    pass

HERE = Path(__file__).parent
MAX_ANSWER_BYTES = 64 * 1024
MAX_BULK_PROJECTS = 200
# Stored objects are never overwritten, so a clip key's bytes never change.
IMMUTABLE = "private, max-age=31536000, immutable"


def create_app(settings: Settings) -> FastAPI:
    """The room for the store and clips `settings` name."""
    # Imported when the app is made, not with this module: the room's views need no Prefect.
    from prefect_glue.answers import submit_answer

    store = build_store(settings)
    access = Access(settings)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["ago"] = _ago
    templates.env.globals["csrf_token"] = access.csrf_token
    templates.env.globals["csrf_header"] = CSRF_HEADER
    app = FastAPI(title="clipgate review room", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def check_access(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refused = access.refusal(request)
        return refused if refused is not None else await call_next(request)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def queue_page(request: Request) -> Response:
        rows = await run_in_threadpool(queue, store)
        return templates.TemplateResponse(request, "queue.html", {"rows": rows})

    @app.get("/projects/{project_id}", response_class=HTMLResponse)
    async def project_page(request: Request, project_id: str) -> Response:
        try:
            view = await run_in_threadpool(project_view, store, project_id, "")
        except InputError as error:
            return templates.TemplateResponse(
                request, "missing.html", {"message": str(error)}, status_code=404
            )
        return templates.TemplateResponse(
            request,
            "project.html",
            {"view": view, "data": _page_data(view)},
        )

    @app.get("/projects/{project_id}/state")
    async def project_state(project_id: str) -> JSONResponse:
        try:
            view = await run_in_threadpool(project_view, store, project_id, "")
        except InputError as error:
            return JSONResponse({"detail": str(error)}, status_code=404)
        return JSONResponse(_state(view))

    @app.get("/projects/{project_id}/audit")
    async def project_audit(project_id: str) -> JSONResponse:
        try:
            evidence = await run_in_threadpool(audit, store, project_id)
        except InputError as error:
            return JSONResponse({"detail": str(error)}, status_code=404)
        return JSONResponse(evidence.model_dump(mode="json"))

    @app.post("/projects/{project_id}/answer")
    async def answer(request: Request, project_id: str) -> JSONResponse:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        seen_round = body.pop("round", None)
        if seen_round is not None and not isinstance(seen_round, int):
            return JSONResponse({"detail": "round must be a whole number"}, status_code=422)
        status, outcome = await _submit(project_id, body, seen_round)
        return JSONResponse(outcome, status_code=status)

    @app.post("/approve")
    async def bulk_approve(request: Request) -> JSONResponse:
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        projects = body.get("projects")
        reviewer = body.get("reviewer", "")
        if (
            not isinstance(projects, list)
            or not projects
            or len(projects) > MAX_BULK_PROJECTS
            or not all(isinstance(project, str) for project in projects)
        ):
            return JSONResponse(
                {"detail": f"projects must be a list of 1-{MAX_BULK_PROJECTS} project ids"},
                status_code=422,
            )
        results = []
        for project_id in dict.fromkeys(projects):
            _status, outcome = await _submit(
                project_id, {"decision": "approve", "reviewer": reviewer}, None
            )
            results.append({"project_id": project_id, **outcome})
        return JSONResponse({"results": results})

    async def _submit(
        project_id: str, answer: dict[str, Any], seen_round: int | None
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, what to tell the page) for one answer through the answer path."""
        try:
            outcome = await run_in_threadpool(
                submit_answer, settings, project_id, answer, AnswerSource.ROOM, seen_round
            )
        except AnswerRefused as error:
            return 422, {"detail": str(error), "accepted": False}
        except InputError as error:
            return 409, {"detail": str(error), "accepted": False}
        said = {
            "accepted": outcome.accepted,
            "delivered": outcome.delivered,
            "review_round": outcome.review_round,
            "message": outcome.message,
            "decided_by": outcome.decided_by.describe(),
        }
        return (200 if outcome.accepted else 409), said

    @app.get("/clips/{object_key:path}")
    async def clip_media(request: Request, object_key: str) -> Response:
        try:
            found = await run_in_threadpool(media_file, store, settings.clips_dir, object_key)
        except InputError as error:
            return JSONResponse({"detail": str(error)}, status_code=404)
        if found.path is None:
            link = await run_in_threadpool(
                _remote_link, settings, store, found.key.channel, found.object_key
            )
            return RedirectResponse(link, status_code=307)
        stat = found.path.stat()
        etag = f'"{found.sha256}"' if found.sha256 else f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        headers = {"etag": etag, "cache-control": IMMUTABLE}
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return FileResponse(
            found.path, media_type=found.content_type, headers=headers, stat_result=stat
        )

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=308)

    return app


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_ANSWER_BYTES:
        return JSONResponse(
            {"detail": f"the request is over {MAX_ANSWER_BYTES // 1024} KiB; shorten the notes"},
            status_code=413,
        )
    try:
        body = json.loads(raw)
    except ValueError:
        return JSONResponse({"detail": "the request body is not JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=400)
    return body


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _remote_link(settings: Settings, store: Store, channel: str, object_key: str) -> str:
    storage = build_storage(settings, channel)
    if not isinstance(storage, R2Storage):
        raise InputError(f"{object_key} is stored in R2, but channel {channel!r} is not on R2")
    return storage.link(object_key)


def _page_data(view: ProjectView) -> dict[str, Any]:
    """What the page's script needs, as JSON."""
    return {
        "project": view.project_id,
        "round": view.review_round,
        "status": view.status,
        "waiting": view.waiting,
        "page": review_page_url("", view.project_id),
        "clips": [
            {
                "number": clip.number,
                "attempt": clip.attempt,
                "duration": clip.duration_s,
                "prompt": clip.prompt,
                "src": clip.media.clip,
                "proxy": clip.media.proxy,
                "thumb": clip.media.thumbnail,
                "strip": clip.media.strip,
                "earlier": [
                    {
                        "attempt": earlier.attempt,
                        "round": earlier.flagged_in_round,
                        "notes": earlier.notes,
                        "src": earlier.media.clip,
                        "thumb": earlier.media.thumbnail,
                    }
                    for earlier in clip.earlier
                ],
            }
            for clip in view.clips
        ],
    }


def _state(view: ProjectView) -> dict[str, Any]:
    return {
        "status": view.status,
        "round": view.review_round,
        "waiting": view.waiting,
        "answered": view.answered.describe() if view.answered else None,
    }


def _ago(seconds: float | None) -> str:
    """'just now', '4 min', '2 h 05 min', '3 d 4 h': how long ago, for people."""
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
