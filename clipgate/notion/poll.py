"""Reviewers' decisions read back from the Tasks database: the core of the notion-poll flow.

A reviewer answers in Notion by setting the task's Status: "Video Approved" approves;
"Video Error" with a new Error Log line ("Regenerate: clips 5, 12, 17") or Video rows set
to "rejected" flags clips, which are remade when the Status becomes "Queued" (or at once,
if the channel wants that). Only the newest line a reviewer wrote counts: the gate's own
lines start with "[" and its replies with "clipgate:".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clipgate.errors import FeedbackError
from clipgate.feedback import parse_clip_numbers
from clipgate.notion.surface import NotionReviewSurface, rich_text_of
from clipgate.states import Status
from clipgate.store import ProjectRow, Store

# Notion rounds last_edited_time down to the minute: look back further than that.
OVERLAP = timedelta(minutes=2)
WATCHED = ("Video Approved", "Video Error", "Queued")
REPLY_PREFIX = "clipgate:"


@dataclass(frozen=True)
class ReviewAnswer:
    """An answer for a waiting run, read from its task page."""

    project_id: str
    flow_run_id: str
    review_round: int
    answer: dict[str, Any]


def read_answers(
    surface: NotionReviewSurface,
    store: Store,
    since: datetime | None,
    regenerate_at_once: frozenset[str],
) -> list[ReviewAnswer]:
    """The answers task pages changed since `since` give to runs waiting for review.

    Channels in `regenerate_at_once` remake flagged clips on "Video Error" itself.
    """
    answers = []
    for page in surface.changed_task_pages(WATCHED, since - OVERLAP if since else None):
        answer = _answer(surface, store, page, regenerate_at_once, "")
        if answer is not None:
            answers.append(answer)
    return answers


def answer_for_page(
    surface: NotionReviewSurface,
    store: Store,
    page_id: str,
    regenerate_at_once: frozenset[str],
    author: str,
) -> ReviewAnswer | None:
    """The answer one task page gives its waiting run now, if any (for webhook events)."""
    if store.project_by_notion_page(page_id) is None:
        return None
    page = surface.task_page(page_id)
    return _answer(surface, store, page, regenerate_at_once, author)


def _answer(
    surface: NotionReviewSurface,
    store: Store,
    page: dict[str, Any],
    regenerate_at_once: frozenset[str],
    author: str,
) -> ReviewAnswer | None:
    project = store.project_by_notion_page(page["id"])
    if project is None or project.flow_run_id is None:
        return None
    if project.status != Status.VIDEO_READY:
        return None
    at_once = project.channel in regenerate_at_once
    decision = _decision(surface, store, project, page, at_once, author)
    if decision is None:
        return None
    return ReviewAnswer(project.project_id, project.flow_run_id, project.review_round, decision)


def _decision(
    surface: NotionReviewSurface,
    store: Store,
    project: ProjectRow,
    page: dict[str, Any],
    regenerate_at_once: bool,
    author: str,
) -> dict[str, Any] | None:
    properties = page["properties"]
    status = properties["Status"]
    label = (status.get(status["type"]) or {}).get("name")
    reviewer = author or str((page.get("last_edited_by") or {}).get("id", ""))
    if label == "Video Approved":
        return {"decision": "approve", "reviewer": reviewer}
    pending = (
        project.pending_review
        if project.pending_review.get("round") == project.review_round
        else {}
    )
    if label == "Video Error" or (label == "Queued" and not pending):
        note = newest_reviewer_line(rich_text_of(properties.get("Error Log", {})))
        rejected = surface.rejected_clips(page["id"])
        try:
            clips = sorted(set(parse_clip_numbers(note)) | set(rejected)) if note else []
            if not clips and not rejected:
                raise FeedbackError(
                    "no clip numbers found: add a line to the Error Log such as "
                    "'Regenerate: clips 5, 12, 17', or set the Video rows to rejected"
                )
            clips = clips or sorted(rejected)
        except FeedbackError as error:
            surface.add_error_log_line(page["id"], f"{REPLY_PREFIX} {error}")
            return None
        pending = {
            "round": project.review_round,
            "clips": clips,
            "notes": [{"clip": number, "note": note[:2000]} for number in clips if note],
            "reviewer": reviewer,
        }
        store.set_pending_review(project.project_id, pending)
        if label == "Video Error" and not regenerate_at_once:
            return None
    if not pending:
        return None
    return {
        "decision": "flag",
        "clips": pending["clips"],
        "notes": pending["notes"],
        "reviewer": pending["reviewer"],
    }


def newest_reviewer_line(error_log: str) -> str:
    """The last line of the Error Log that a person wrote ("" if none)."""
    for line in reversed(error_log.splitlines()):
        text = line.strip()
        if text and not text.startswith(("[", REPLY_PREFIX)):
            return text
    return ""
