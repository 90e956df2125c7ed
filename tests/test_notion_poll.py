"""Reviews answered in Notion: the notion-poll flow reads them and resumes the waiting run."""

from __future__ import annotations

from typing import Any

import pytest

from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_store
from flows.notion_poll import notion_poll
from flows.resume import waiting_review_key
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
    notion.configure(monkeypatch)
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


def test_notes_on_video_rows_flag_their_clips_and_old_lines_do_not(
    notion: Workspace,
    notion_project: VideoProject,
    settings: Settings,
) -> None:
    """A reviewer's note on clip 7's row flags clip 7 with that note; last round's line does not."""
    store = build_store(settings)
    run = FlowInThread(notion_project)
    run_id = paused_round(store, notion_project.project_id, 1)
    eventually(
        lambda: notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready",
        "Video Ready in Notion",
    )
    ana = notion.fake.add_person("Ana")
    _as_reviewer(notion, ana, **_status("Video Error"), **_error_log(notion, "clips 1-2"))
    _as_reviewer(notion, ana, **_status("Queued"))
    assert notion_poll() == 1
    paused_round(store, notion_project.project_id, 2)
    eventually(
        lambda: notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready",
        "Video Ready again",
    )

    row = notion_rows(notion)[7]
    notion.fake.edit_page_as_person(
        row["id"], {"Notes": {"rich_text": [{"text": {"content": "jitter at 0:04"}}]}}, ana
    )
    _as_reviewer(notion, ana, **_status("Video Error"))
    _as_reviewer(notion, ana, **_status("Queued"))
    assert notion_poll() == 1
    paused_round(store, notion_project.project_id, 3)
    second = store.review_events(notion_project.project_id)[1]
    assert second.clips == [7]
    assert second.notes == [{"clip": 7, "note": "jitter at 0:04"}]
    assert waiting_review_key(run_id) == "review-3"
    _as_reviewer(notion, ana, **_status("Video Approved"))
    assert notion_poll() == 1
    assert run.finish().status == "generating_audio"
