"""Tasks that keep the reviewers' surface (Notion) in line with the gate."""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency

from clipgate.errors import TransientNotionError
from clipgate.links import review_page_url
from clipgate.models import VideoProject
from clipgate.notion.sync import review_surface, sync_project
from clipgate.wiring import build_store
from prefect_glue.run_settings import NOTION_LIMIT, load_run_settings


@task(cache_policy=NO_CACHE)
def check_review_surface(project: VideoProject) -> None:
    """Stop before any clip is made if the project's Notion set-up is wrong."""
    settings = load_run_settings()
    if settings.notion is not None and project.notion_page_id:
        review_surface(settings.notion)


def retry_when_notion_failed(_task: Task[..., Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry when Notion kept failing; a refusal or a set-up problem will not fix itself."""
    return isinstance(state.result(raise_on_failure=False), TransientNotionError)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=30,
    retry_condition_fn=retry_when_notion_failed,
)
def publish_review(project: VideoProject) -> None:
    """Show the project's clips and review state in Notion, if the project lives there."""
    settings = load_run_settings()
    if settings.notion is None or not project.notion_page_id:
        return
    # One publisher at a time across processes keeps the workspace under Notion's rate.
    with concurrency(NOTION_LIMIT, occupy=1, strict=True):
        sync_project(
            review_surface(settings.notion),
            build_store(settings),
            project.project_id,
            project.notion_page_id,
            upload=settings.storage_for(project.channel) == "notion",
            review_page=(
                review_page_url(settings.room_url, project.project_id)
                if settings.room_public_url
                else ""
            ),
        )
