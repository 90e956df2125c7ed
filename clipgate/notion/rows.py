"""The Video rows of a task: one per clip number, each showing the clip's current attempt.

Rows are found with one paginated query per task; duplicate rows left by anyone are
moved to the trash (the oldest is kept). A create or an append that may have happened is
looked up before it is sent again (`NotionGateway.write_or_find`), so a repeat never adds
a second row or a second player.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from clipgate.models import StoredClip
from clipgate.notion.gateway import NotionGateway
from clipgate.notion.reads import parse_instant, query_all, rich_text_of
from clipgate.notion.schema import VideoRowStatus

ONE_MINUTE = timedelta(minutes=1)


class ClipForReview(StoredClip):
    """One stored clip as its Video row shows it; `url` is what the row links to."""

    generated_at: datetime
    local_file: Path | None
    upload: bool
    url_is_review_page: bool = False

    @property
    def file_name(self) -> str:
        return f"clip-{self.number:02d}-attempt-{self.attempt}.mp4"


class VideoRows:
    """The Video rows in one Videos data source."""

    def __init__(self, gateway: NotionGateway, videos_source: str) -> None:
        self.gateway = gateway
        self.videos_source = videos_source

    def by_clip(self, task_page_id: str) -> dict[int, dict[str, Any]]:
        """The task's rows by clip number; any duplicate of a clip's row goes to the trash."""
        rows: dict[int, list[dict[str, Any]]] = {}
        found = query_all(
            self.gateway,
            self.videos_source,
            {"property": "Task", "relation": {"contains": task_page_id}},
            "find the task's Video rows",
        )
        for page in found:
            number = page["properties"].get("Clip Number", {}).get("number")
            if isinstance(number, int | float):
                rows.setdefault(int(number), []).append(page)
        kept: dict[int, dict[str, Any]] = {}
        for number, pages in rows.items():
            oldest, *extra = sorted(pages, key=lambda page: (page["created_time"], page["id"]))
            kept[number] = oldest
            for duplicate in extra:
                self.gateway.send_repeatable(
                    f"move a duplicate row of clip {number} to the trash",
                    self.gateway.client.pages.update,
                    page_id=duplicate["id"],
                    in_trash=True,
                )
        return kept

    def create(self, task_page_id: str, clip: ClipForReview, file_object: dict[str, Any]) -> None:
        """Add the clip's row to the task, unless a try that failed added it after all."""
        what = f"create the Video row of clip {clip.number} for task page {task_page_id}"
        properties = {
            "Name": {"title": [{"type": "text", "text": {"content": f"Clip {clip.number:02d}"}}]},
            "Clip Number": {"number": clip.number},
            "Task": {"relation": [{"id": task_page_id}]},
            **_clip_properties(clip, file_object),
        }

        def create() -> dict[str, Any]:
            created: dict[str, Any] = self.gateway.write_once(
                what,
                self.gateway.client.pages.create,
                parent={"type": "data_source_id", "data_source_id": self.videos_source},
                properties=properties,
                children=_video_blocks(clip, file_object),
            )
            return created

        def find() -> dict[str, Any] | None:
            existing = self.by_clip(task_page_id).get(clip.number)
            if existing is not None and not shows(existing, clip):
                self.update(existing, clip, file_object)
            return existing

        self.gateway.write_or_find(what, create, find)

    def update(self, row: dict[str, Any], clip: ClipForReview, file_object: dict[str, Any]) -> None:
        """Make the row show this attempt, with its player added below the earlier ones."""
        self.gateway.send_repeatable(
            f"update the Video row of clip {clip.number}",
            self.gateway.client.pages.update,
            page_id=row["id"],
            properties=_clip_properties(clip, file_object),
        )
        what = f"add the clip {clip.number} attempt {clip.attempt} player to row {row['id']}"
        marker = _attempt_heading(clip)

        def append() -> dict[str, Any]:
            appended: dict[str, Any] = self.gateway.write_once(
                what,
                self.gateway.client.blocks.children.append,
                block_id=row["id"],
                children=_video_blocks(clip, file_object),
            )
            return appended

        self.gateway.write_or_find(what, append, lambda: self._heading(row["id"], marker))

    def flagged(self, task_page_id: str, since: datetime | None, bot_id: str) -> dict[int, str]:
        """Clips a reviewer flagged on their rows, with the row's note.

        A row counts when it is set to rejected, or when a person (not the integration
        `bot_id`) wrote a note on it after `since`, the start of the review: notes are kept
        across rounds, so an older one does not flag the clip again.
        """
        flagged: dict[int, str] = {}
        for number, row in self.by_clip(task_page_id).items():
            properties = row["properties"]
            note = rich_text_of(properties.get("Notes", {})).strip()
            status = (properties.get("Status", {}).get("select") or {}).get("name")
            by_person = (row.get("last_edited_by") or {}).get("id") not in (None, bot_id)
            # Notion rounds last_edited_time down to the minute.
            recent = since is None or parse_instant(row["last_edited_time"]) >= since - ONE_MINUTE
            if status == VideoRowStatus.REJECTED or (note and by_person and recent):
                flagged[number] = note
        return flagged

    def _heading(self, page_id: str, marker: str) -> dict[str, Any] | None:
        """The row's block reading `marker`, if it has one."""
        cursor: str | None = None
        while True:
            answer = self.gateway.send_repeatable(
                "read a Video row's blocks",
                self.gateway.client.blocks.children.list,
                block_id=page_id,
                page_size=100,
                start_cursor=cursor,
            )
            for block in answer.get("results", []):
                texts = block.get(block.get("type", ""), {}).get("rich_text", [])
                if any(text.get("plain_text") == marker for text in texts):
                    found: dict[str, Any] = block
                    return found
            if not answer.get("has_more"):
                return None
            cursor = answer.get("next_cursor")


def shows(row: dict[str, Any], clip: ClipForReview) -> bool:
    """True when the row already shows this attempt of the clip, the way it should."""
    properties = row.get("properties", {})
    attempt = properties.get("Attempt", {}).get("number")
    files = properties.get("File", {}).get("files", [])
    if attempt != clip.attempt or not files:
        return False
    if clip.upload:
        # Only a file Notion holds counts: an older row may still link elsewhere.
        return any(item.get("type") == "file" for item in files)
    return any(item.get("external", {}).get("url") == clip.url for item in files)


def _clip_properties(clip: ClipForReview, file_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "File": {"files": [file_object]},
        "Duration": {"number": round(clip.duration_s, 2)},
        "Generated Date": {"date": {"start": clip.generated_at.isoformat()}},
        "Status": {"select": {"name": VideoRowStatus.GENERATED.value}},
        "Attempt": {"number": clip.attempt},
    }


def _attempt_heading(clip: ClipForReview) -> str:
    return f"Clip {clip.number}, attempt {clip.attempt}"


def _video_blocks(clip: ClipForReview, file_object: dict[str, Any]) -> list[dict[str, Any]]:
    heading = _attempt_heading(clip)
    blocks: list[dict[str, Any]] = [
        {
            "object": "block",
            "type": "heading_3",
            "heading_3": {"rich_text": [{"type": "text", "text": {"content": heading}}]},
        }
    ]
    if clip.url_is_review_page and not clip.upload:
        # A web page is no video file: link to it instead of embedding a player.
        link = {
            "content": f"Watch clip {clip.number} in the review room",
            "link": {"url": clip.url},
        }
        blocks.append(
            {
                "object": "block",
                "type": "paragraph",
                "paragraph": {"rich_text": [{"type": "text", "text": link}]},
            }
        )
        return blocks
    source = {key: value for key, value in file_object.items() if key != "name"}
    blocks.append({"object": "block", "type": "video", "video": source})
    return blocks
