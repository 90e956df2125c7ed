"""Reviewers' decisions read back from the Tasks database: the core of the notion-poll flow.

A reviewer answers in Notion by setting the task's Status: "Video Approved" approves;
"Video Error" with a new Error Log line ("Regenerate: clips 5, 12, 17"), or Video rows a
reviewer noted or set to "rejected", flags clips, which are remade when the Status becomes
"Queued" (or at once, if the channel wants that). Only the newest line a reviewer wrote
since the gate's last entry counts: the gate's own lines start with "[" and its replies
with "clipgate:".

Reviewers often set the Status first and type the Error Log line after it, and Notion
sends the first `page.properties_updated` event at once (later edits of that minute come
in one later event). So feedback that cannot be read yet is not answered with an error
while the page's last edit is younger than the grace window (`feedback_grace_s`, plus
the minute Notion rounds `last_edited_time` down by): the answer is simply not ready, and
the poll, which looks back over the whole window, or the next webhook event reads the
page again. Only after the window does the reviewer get a `clipgate:` reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clipgate.errors import FeedbackError
from clipgate.feedback import parse_clip_numbers
from clipgate.notion.reads import parse_instant, rich_text_of
from clipgate.notion.surface import NotionReviewSurface
from clipgate.states import Status
from clipgate.store import ProjectRow, Store, as_utc, utc_now

# Notion rounds last_edited_time down to the minute: look back further than that.
OVERLAP = timedelta(minutes=2)
ROUNDING = timedelta(minutes=1)
# The task statuses a reviewer sets to answer: approve, flag, or flag and queue at once.
WATCHED = tuple(
    status.label for status in (Status.VIDEO_APPROVED, Status.VIDEO_ERROR, Status.QUEUED)
)
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
    # A page inside its grace window was not answered: read it again until the window ends.
    lookback = OVERLAP + _grace(surface)
    answers = []
    for page in surface.changed_task_pages(WATCHED, since - lookback if since else None):
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
    """The answer one task page gives its waiting run now, if any (for webhook events).

    None also while the reviewer is still within the grace window with unreadable
    feedback; Notion's next event for the page, or the poll, reads it again.
    """
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
        line = newest_reviewer_line(rich_text_of(properties.get("Error Log", {})))
        from_rows = surface.flagged_rows(page["id"], as_utc(project.review_started_at))
        try:
            named = parse_clip_numbers(line) if line else []
            if not named and not from_rows:
                raise FeedbackError(
                    "no clip numbers found: add a line to the Error Log such as "
                    "'Regenerate: clips 5, 12, 17', or note or reject the Video rows"
                )
        except FeedbackError as error:
            if not _grace_over(surface, page):
                return None
            surface.add_error_log_line(page["id"], f"{REPLY_PREFIX} {error}")
            return None
        clips = sorted(set(named) | set(from_rows))
        pending = {
            "round": project.review_round,
            "clips": clips,
            "notes": [
                {"clip": number, "note": (from_rows.get(number) or line)[:2000]}
                for number in clips
                if from_rows.get(number) or line
            ],
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


def _grace(surface: NotionReviewSurface) -> timedelta:
    return timedelta(seconds=surface.gateway.config.feedback_grace_s)


def _grace_over(surface: NotionReviewSurface, page: dict[str, Any]) -> bool:
    """True once the reviewer has had the grace window since their last edit of the page."""
    edited = parse_instant(str(page["last_edited_time"]))
    return utc_now() >= edited + ROUNDING + _grace(surface)


def newest_reviewer_line(error_log: str) -> str:
    """The last line a person wrote since the gate's last entry ("" if none).

    Lines above the gate's newest entry answered an earlier round and no longer count.
    """
    for line in reversed(error_log.splitlines()):
        text = line.strip()
        if not text or text.startswith(REPLY_PREFIX):
            continue
        return "" if text.startswith("[") else text
    return ""
