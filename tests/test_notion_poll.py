"""Reviews answered in Notion: the notion-poll flow reads them and resumes the waiting run."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clipgate import gate
from clipgate.models import AnswerSource, ReviewDecision, VideoProject
from clipgate.notion.poll import REPLY_PREFIX, ReviewAnswer, answer_for_page, read_answers
from clipgate.notion.surface import NotionReviewSurface
from clipgate.notion.sync import sync_project
from clipgate.settings import Settings
from clipgate.store import Store, open_store
from clipgate.wiring import build_store
from flows.notion_poll import notion_poll
from prefect_glue.answers import waiting_review_key
from tests.flow_helpers import FlowInThread, eventually, generations, paused_round
from tests.notion_workspace import (
    Workspace,
    notion_rows,
    reviewed_project,
    stored_clips,
    webhook_subscriber,
)

# Longer than the default grace window (3 minutes) plus the minute Notion rounds away.
GRACE_PASSED_S = 5 * 60


@pytest.fixture
def notion_project(
    notion: Workspace,
    settings: Settings,
    project: VideoProject,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api_url: str,
) -> VideoProject:
    """Settings that mirror the project to the local Notion, rows linked to the review room."""
    notion.configure(monkeypatch)
    monkeypatch.setenv("CLIPGATE_ROOM_PUBLIC_URL", "https://review.example.com")
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

    # Written before the grace window: it is answered at once.
    notion.fake.advance_clock(-GRACE_PASSED_S)
    _as_reviewer(notion, ana, **_status("Video Error"), **_error_log(notion, "Bad motion"))
    notion.fake.advance_clock(GRACE_PASSED_S)
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
    assert summary.status == "audio_ready"
    assert notion_poll() == 0


def test_notes_on_video_rows_flag_their_clips_and_old_lines_do_not(
    notion: Workspace, waiting: tuple[Store, str], tmp_path: Path
) -> None:
    """A reviewer's note on clip 7's row flags clip 7 with that note; last round's line does not."""
    store, _channel = waiting
    project = store.project_by_notion_page(notion.task_page_id)
    assert project is not None
    surface = NotionReviewSurface.connect(notion.config)
    room = f"https://review.example.com/projects/{project.project_id}"

    def publish() -> None:
        sync_project(
            surface, store, project.project_id, notion.task_page_id, upload=False, review_page=room
        )

    publish()
    ana = notion.fake.add_person("Ana")
    _as_reviewer(notion, ana, **_status("Video Error"), **_error_log(notion, "clips 1-2"))
    _as_reviewer(notion, ana, **_status("Queued"))
    (first,) = read_answers(surface, store, None, frozenset())
    assert (first.review_round, first.answer["clips"]) == (1, [1, 2])
    decision = ReviewDecision.model_validate(first.answer)
    gate.record_decision(store, project.project_id, 1, decision, AnswerSource.NOTION_POLL)
    gate.start_generation(store, project.project_id, 2)
    gate.finish_generation(store, project.project_id, 2, stored_clips(tmp_path, {1: 2, 2: 2}))
    publish()
    assert notion.fake.simple_properties(notion.task_page_id)["Status"] == "Video Ready"

    row = notion_rows(notion)[7]
    notion.fake.edit_page_as_person(
        row["id"], {"Notes": {"rich_text": [{"text": {"content": "jitter at 0:04"}}]}}, ana
    )
    _as_reviewer(notion, ana, **_status("Video Error"))
    assert read_answers(surface, store, None, frozenset()) == []
    _as_reviewer(notion, ana, **_status("Queued"))
    (second,) = read_answers(surface, store, None, frozenset())
    assert (second.review_round, second.answer["clips"]) == (2, [7])
    assert second.answer["notes"] == [{"clip": 7, "note": "jitter at 0:04"}]
    assert second.answer["reviewer"] == ana


@pytest.fixture
def waiting(notion: Workspace, project: VideoProject, tmp_path: Path) -> tuple[Store, str]:
    """A store whose project (mirrored to the task page) waits for its first review."""
    store = open_store(f"sqlite:///{tmp_path / 'gate.db'}")
    in_notion = project.model_copy(update={"notion_page_id": notion.task_page_id})
    reviewed_project(store, in_notion, tmp_path, flow_run_id="run-1")
    return store, project.channel


def _replies(notion: Workspace) -> list[str]:
    log = str(notion.fake.simple_properties(notion.task_page_id)["Error Log"])
    return [line for line in log.splitlines() if line.startswith(REPLY_PREFIX)]


def test_a_line_typed_after_the_status_is_read_by_the_webhook_without_an_error_reply(
    notion: Workspace, waiting: tuple[Store, str]
) -> None:
    """Status first (event at once: not ready, no reply), line next (later event): flagged."""
    store, channel = waiting
    surface = NotionReviewSurface.connect(notion.config)
    answers: list[ReviewAnswer | None] = []

    def on_event(event: dict[str, Any]) -> None:
        author = event["authors"][0]["id"]
        page = event["entity"]["id"]
        answers.append(answer_for_page(surface, store, page, frozenset({channel}), author))

    ana = notion.fake.add_person("Ana")
    with webhook_subscriber(on_event) as subscriber:
        notion.fake.subscribe_webhook(subscriber.url, "token")
        _as_reviewer(notion, ana, **_status("Video Error"))
        subscriber.wait_for(1)
        assert answers == [None]
        _as_reviewer(notion, ana, **_error_log(notion, "Regenerate: clips 5, 12, 17"))
        # Notion sends the rest of the minute's edits when the minute is over.
        notion.fake.advance_clock(60)

    assert len(answers) == 2
    flagged = answers[1]
    assert flagged is not None
    assert (flagged.flow_run_id, flagged.answer["clips"]) == ("run-1", [5, 12, 17])
    assert flagged.answer["reviewer"] == ana
    assert _replies(notion) == []


def test_feedback_without_clip_numbers_gets_one_reply_once_the_window_is_over(
    notion: Workspace, waiting: tuple[Store, str]
) -> None:
    """Inside the window the poll stays silent; after it, exactly one clear reply."""
    store, _channel = waiting
    surface = NotionReviewSurface.connect(notion.config)
    ana = notion.fake.add_person("Ana")
    _as_reviewer(notion, ana, **_status("Video Error"), **_error_log(notion, "Bad motion"))
    assert read_answers(surface, store, None, frozenset()) == []
    assert _replies(notion) == []

    notion.fake.advance_clock(-GRACE_PASSED_S)
    _as_reviewer(notion, ana, **_error_log(notion, "still bad"))
    notion.fake.advance_clock(GRACE_PASSED_S)
    for _ in range(2):
        assert read_answers(surface, store, None, frozenset()) == []
    (reply,) = _replies(notion)
    assert reply.startswith("clipgate: no clip numbers found in 'still bad'")


def test_the_poll_cursor_does_not_skip_a_page_that_was_inside_its_window(
    notion: Workspace, waiting: tuple[Store, str]
) -> None:
    """A poll that saw the page just before its window ended still reads it after the end."""
    store, _channel = waiting
    surface = NotionReviewSurface.connect(notion.config)
    ana = notion.fake.add_person("Ana")
    notion.fake.advance_clock(-GRACE_PASSED_S)
    _as_reviewer(notion, ana, **_status("Video Error"))
    notion.fake.advance_clock(GRACE_PASSED_S)
    edited = notion.fake.page(notion.task_page_id)["last_edited_time"]
    window_ends = datetime.fromisoformat(edited.replace("Z", "+00:00")) + timedelta(
        minutes=1, seconds=notion.config.feedback_grace_s
    )

    last_poll_started = window_ends - timedelta(seconds=1)
    assert read_answers(surface, store, last_poll_started, frozenset()) == []
    (reply,) = _replies(notion)
    assert reply.startswith("clipgate: no clip numbers found")
