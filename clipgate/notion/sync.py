"""Bringing Notion in line with the gate's database for one project."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipgate.errors import InputError
from clipgate.notion.gateway import NotionConfig
from clipgate.notion.rows import ClipForReview
from clipgate.notion.surface import NotionReviewSurface, TaskReviewState
from clipgate.states import Status
from clipgate.store import Store, as_utc, utc_now


@cache
def review_surface(config: NotionConfig) -> NotionReviewSurface:
    """The checked surface for a workspace; checked once per process, before any upload."""
    return NotionReviewSurface.connect(config)


def sync_project(
    surface: NotionReviewSurface,
    store: Store,
    project_id: str,
    task_page_id: str,
    upload: bool,
    review_page: str = "",
) -> None:
    """Publish the project's current clips (once it has any) and its review state.

    `upload` puts every clip into Notion. Otherwise a clip stored at an http(s) address is
    linked there; a clip kept on this machine is linked to `review_page` (the review room's
    page for the project, when the room has a public address) or else uploaded, so Notion
    never gets a `file://` address.
    """
    row = store.project(project_id)
    if row is None:
        raise InputError(f"no video project {project_id!r} in the store")
    clips = store.clips(project_id)
    if clips:
        shown = []
        for clip in clips:
            on_the_web = urlsplit(clip.url).scheme in ("http", "https")
            to_upload = upload or (not on_the_web and not review_page)
            shown.append(
                ClipForReview.model_validate(
                    {
                        **clip.stored_fields(),
                        "url": clip.url if on_the_web or to_upload else review_page,
                        "generated_at": as_utc(clip.updated_at) or utc_now(),
                        "local_file": Path(clip.location) if to_upload else None,
                        "upload": to_upload,
                        "url_is_review_page": not on_the_web and not to_upload,
                    }
                )
            )
        surface.publish_clips(task_page_id, shown, row.channel)
    surface.sync_task(
        task_page_id,
        TaskReviewState(
            status=Status(row.status),
            error_log=[error_log_line(entry) for entry in row.error_log],
            review_started_at=as_utc(row.review_started_at),
            review_completed_at=as_utc(row.review_completed_at),
        ),
    )


def error_log_line(entry: dict[str, Any]) -> str:
    """One error log entry as the task page shows it."""
    line = f"[{entry['at']}] round {entry['round']}: {entry['message']}"
    if entry.get("reviewer"):
        line += f" (by {entry['reviewer']})"
    notes = "; ".join(f"clip {note['clip']}: {note['note']}" for note in entry.get("notes", []))
    return f"{line}. Notes: {notes}" if notes else line
