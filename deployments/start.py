"""`clipgate start MANIFEST`: start the gate on a project, on its deployment or here.

A project is run by one flow run at a time. Before starting, this looks for a run of the
project that has not finished: the one the store names, and any this command started
that has not reached the store yet (a deployed run waits for a worker first; every run
started here is tagged `clipgate-project:<id>` for that). One that is found is reported
and nothing is started.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TextIO, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import TERMINAL_STATES, DeploymentStatus, FlowRun, State
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.utilities.urls import url_for

from clipgate.errors import ConfigurationError
from clipgate.gate import ProjectSummary
from clipgate.links import review_page_url
from clipgate.liveness import is_alive
from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.states import Status
from clipgate.store import Store, sqlite_file
from clipgate.wiring import build_store
from prefect_glue.answers import is_suspended

PROJECT_TAG = "clipgate-project:{project_id}"


@dataclass(frozen=True)
class UnfinishedRun:
    """A run of the project that has not finished, and whether anything still drives it."""

    flow_run_id: str
    state: State[Any]
    driven: bool


def start_project(
    settings: Settings, project: VideoProject, deployment: str | None, local: bool, out: TextIO
) -> int:
    """Start a run of `project` unless one is unfinished; the process exit code.

    `deployment` names the video-review deployment to run on (default: the one
    `clipgate serve` and prefect.yaml make); `local` runs the flow in this process instead.
    """
    store = _store(settings)
    row = store.project(project.project_id) if store else None
    unfinished = unfinished_run(store, project.project_id)
    if unfinished is not None:
        _say_already_running(settings, project, store, unfinished, out)
        return 1
    if row is not None and row.status == Status.AUDIO_READY:
        print(
            f"project {project.project_id} is already complete ({Status(row.status).label}); "
            "start it under a new project id to make it again",
            file=out,
        )
        return 1
    if local:
        return _run_here(settings, project, out)
    return _run_deployed(settings, project, deployment, out)


def unfinished_run(store: Store | None, project_id: str) -> UnfinishedRun | None:
    """The project's run that has not finished, if there is one."""
    row = store.project(project_id) if store else None
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[PROJECT_TAG.format(project_id=project_id)]),
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(not_any_=sorted(TERMINAL_STATES))
                ),
            )
        )
        if row is not None and row.flow_run_id is not None:
            # A run deleted from the server is finished as far as starting goes.
            with suppress(ObjectNotFound):
                runs.insert(0, client.read_flow_run(UUID(row.flow_run_id)))
    for run in runs:
        if run.state is not None and not run.state.is_final():
            return UnfinishedRun(
                str(run.id), run.state, _driven(store, project_id, str(run.id), run.state)
            )
    return None


def _driven(store: Store | None, project_id: str, run_id: str, state: State[Any]) -> bool:
    # Waiting for a worker, or suspended, a run needs no process; a running or paused one
    # has lost its process when the heartbeat it wrote stopped. One that has written no
    # heartbeat yet is still starting.
    if state.is_scheduled() or state.is_pending() or is_suspended(state):
        return True
    beat = store.heartbeat(project_id) if store else None
    return beat is None or beat.flow_run_id != run_id or is_alive(beat)


def _store(settings: Settings) -> Store | None:
    # A database that is not there knows no project; the run makes it.
    database = sqlite_file(settings.resolved_database_url)
    if database is not None and not database.is_file():
        return None
    return build_store(settings)


def _say_already_running(
    settings: Settings,
    project: VideoProject,
    store: Store | None,
    unfinished: UnfinishedRun,
    out: TextIO,
) -> None:
    row = store.project(project.project_id) if store else None
    where = f" (status {Status(row.status).label}, round {row.review_round})" if row else ""
    print(
        f"project {project.project_id} is already running: flow run {unfinished.flow_run_id} "
        f"is {unfinished.state.name}{where}; not starting it twice",
        file=out,
    )
    print(f"review   {review_page_url(settings.room_url, project.project_id)}", file=out)
    if not unfinished.driven:
        print(
            f"its process is gone: `clipgate recover {project.project_id}` finishes the project",
            file=out,
        )


def _run_deployed(
    settings: Settings, project: VideoProject, deployment: str | None, out: TextIO
) -> int:
    from deployments.serve import VIDEO_REVIEW
    from flows.video_review import video_review

    name = f"{video_review.name}/{deployment or VIDEO_REVIEW}"
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ConfigurationError(
                f"no deployment {name} on the Prefect server at {PREFECT_API_URL.value()}: "
                "run `clipgate serve` (or `prefect deploy --all`) first, or start the project "
                "here with --local"
            ) from None
    run = cast(
        FlowRun,
        run_deployment(
            name=found.id,
            parameters={"project": project.model_dump(mode="json")},
            timeout=0,
            tags=[PROJECT_TAG.format(project_id=project.project_id)],
            as_subflow=False,
        ),
    )
    _say_started(settings, project, run, f"deployment {name}", out)
    if found.status != DeploymentStatus.READY:
        print(
            f"nothing is serving {name} now: the run starts when `clipgate serve` or a "
            "worker on its work pool picks it up",
            file=out,
        )
    return 0


def _run_here(settings: Settings, project: VideoProject, out: TextIO) -> int:
    from prefect.flow_engine import run_flow

    from flows.video_review import video_review

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            video_review,
            parameters={"project": project.model_dump(mode="json")},
            tags=[PROJECT_TAG.format(project_id=project.project_id)],
        )
    _say_started(settings, project, run, "this process", out)
    print(
        f"it runs here until it is approved: answer its reviews in the review room or with "
        f"`clipgate review {project.project_id} --approve` (or --flag 'clips 5, 12') from "
        f"another shell; if this process stops, `clipgate recover {project.project_id}` "
        "finishes the project",
        file=out,
        flush=True,
    )
    summary = cast(
        ProjectSummary, run_flow(video_review, flow_run=run, parameters={"project": project})
    )
    print(f"project {project.project_id} finished: status {summary.status.label}", file=out)
    return 0


def _say_started(
    settings: Settings, project: VideoProject, run: FlowRun, where: str, out: TextIO
) -> None:
    ui = url_for(run)
    print(f"started flow run {run.id} on {where}", file=out)
    if ui:
        print(f"run      {ui}", file=out)
    print(
        f"project  {project.project_id} (channel {project.channel}, {len(project.clips)} clips)",
        file=out,
    )
    print(
        f"review   {review_page_url(settings.room_url, project.project_id)}", file=out, flush=True
    )
