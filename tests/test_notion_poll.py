"""Reviews answered in Notion: the notion-poll flow reads them and resumes the waiting run."""

from __future__ import annotations

from typing import Any

import pytest

from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_store
from deployments.setup import ensure_concurrency_limits
from flows.notion_poll import notion_poll
from flows.resume import waiting_review_key
from tasks.publish import NOTION_LIMIT
from tests.flow_helpers import FlowInThread, eventually, generations, paused_round
from tests.notion_workspace import Workspace, notion_rows


@pytest.fixture
def notion_project(
    notion: Workspace,
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api_url: str,
) -> VideoProject:
    """Settings that mirror the project to the local Notion, with links (no uploads)."""
    for name, value in {
        "TOKEN": notion.config.token.get_secret_value(),
        "TASKS_DATABASE_ID": notion.config.tasks_database_id,
        "VIDEOS_DATABASE_ID": notion.config.videos_database_id,
        "BASE_URL": notion.config.base_url,
        "REQUESTS_PER_SECOND": "50",
    }.items():
        monkeypatch.setenv(f"CLIPGATE_NOTION__{name}", value)
    ensure_concurrency_limits({NOTION_LIMIT: 1})
    return project.model_copy(update={"notion_page_id": notion.task_page_id})


def _as_reviewer(notion: Workspace, person: str, **properties: Any) -> None:
    notion.fake.edit_page_as_person(notion.task_page_id, properties, person)


def _status(label: str) -> dict[str, Any]:
    return {"Status": {"status": {"name": label}}}


def _error_log(notion: Workspace, line: str) -> dict[str, Any]:
    current = notion.fake.simple_properties(notion.task_page_id)["Error Log"]
    text = f"{current}\n{line}" if current else line
    return {"Error Log": {"rich_text": [{"type": "text", "text": {"content": text}}]}}


def test_poll_flags_on_video_error_then_queued_and_approves(
    notion: Workspace,
    notion_project: VideoProject,
    settings: Settings,
) -> None:
    """Video Error names clips, Queued remakes exactly them, Video Approved ends the review."""
    store = build_store(settings)
    run = FlowInThread(notion_project)
    run_id = paused_round(store, notion_project.project_id, 1)
    eventually(
        lambda: notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready",
        "Video Ready in Notion",
    )
    ana = notion.fake.add_person("Ana")

    _as_reviewer(notion, ana, **_status("Video Error"), **_error_log(notion, "Bad motion"))
    assert notion_poll() == 0
    assert (
        "clipgate: no clip numbers found"
        in notion.fake.simple_properties(notion.task_page_id)["Error Log"]
    )

    _as_reviewer(
        notion, ana, **_status("Video Error"), **_error_log(notion, "Regenerate: clips 5, 12, 17")
    )
    assert notion_poll() == 0
    assert waiting_review_key(run_id) == "review-1"

    _as_reviewer(notion, ana, **_status("Queued"))
    assert notion_poll() == 1
    assert notion_poll() == 0
    paused_round(store, notion_project.project_id, 2)
    assert generations(store, notion_project.project_id) == 21
    attempts = {number: row["Attempt"] for number, row in notion_rows(notion).items()}
    assert {number for number, attempt in attempts.items() if attempt == 2} == {5, 12, 17}
    (first,) = [event for event in store.review_events(notion_project.project_id)]
    assert (first.clips, first.reviewer) == ([5, 12, 17], ana)

    _as_reviewer(notion, ana, **_status("Video Approved"))
    assert notion_poll() == 1
    summary = run.finish()
    assert summary.status == "generating_audio"
    assert notion_poll() == 0
