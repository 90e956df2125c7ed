"""The review surface in Notion: one Video row per clip, and the task page's review state.

Every method converges: run it again after any failure and Notion ends as one clean run
would leave it. Rows are found with one paginated query per task; a row already showing
the clip's current attempt is left alone; a create that may have happened is looked up
before it is sent again, and duplicate rows left by anyone are moved to the trash.

A row shows its clip one of three ways: uploaded to Notion (File Upload API), linked where
it is stored (R2), or linked to the review room's page for the project. Only http(s)
addresses are ever written: a `file://` address would open nowhere but on this machine.
Uploads respect the workspace's own limit (`users/me` `workspace_limits`, read once):
a clip over it stops the publish before anything is uploaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clipgate.errors import ConfigurationError, NotionError
from clipgate.notion.gateway import AmbiguousWrite, NotionConfig, NotionGateway
from clipgate.notion.schema import Workspace, schema_problems
from clipgate.states import Status

SINGLE_PART_LIMIT = 20 * 1024 * 1024
PART_BYTES = 10 * 1024 * 1024
TEXT_LIMIT = 2000
RICH_TEXT_OBJECTS = 100
ONE_MINUTE = timedelta(minutes=1)
UPLOAD_RESTARTS = 8


@dataclass(frozen=True)
class ClipForReview:
    """What a Video row shows of one clip."""

    number: int
    attempt: int
    duration_s: float
    generated_at: datetime
    url: str
    local_file: Path | None
    upload: bool
    url_is_review_page: bool = False

    @property
    def file_name(self) -> str:
        return f"clip-{self.number:02d}-attempt-{self.attempt}.mp4"


@dataclass(frozen=True)
class TaskReviewState:
    """What the task page shows of the review."""

    status: Status
    error_log: Sequence[str]
    review_started_at: datetime | None
    review_completed_at: datetime | None


class NotionReviewSurface:
    """Publishes clips and review state to one workspace."""

    def __init__(self, gateway: NotionGateway, workspace: Workspace) -> None:
        self.gateway = gateway
        self.workspace = workspace
        self._me: dict[str, Any] | None = None

    @classmethod
    def connect(cls, config: NotionConfig) -> NotionReviewSurface:
        """Check both databases and stop with every problem listed if the set-up is wrong."""
        gateway = NotionGateway(config)
        problems, workspace = schema_problems(
            gateway, config.tasks_database_id, config.videos_database_id
        )
        if workspace is None:
            listed = "\n  - ".join(problems)
            raise ConfigurationError(
                f"the Notion databases are not set up for clipgate:\n  - {listed}\n"
                "Fix them in Notion, or run `clipgate notion init --parent PAGE_ID`; "
                "`clipgate notion doctor` checks again."
            )
        return cls(gateway, workspace)

    def publish_clips(
        self, task_page_id: str, clips: Sequence[ClipForReview], channel: str
    ) -> None:
        """Make the task's Video rows show exactly these clips, one row per clip number.

        Stops before any upload when a clip is larger than the workspace takes.
        """
        self._check_upload_sizes(clips, channel)
        rows = self._rows_by_clip(task_page_id)
        for clip in sorted(clips, key=lambda clip: clip.number):
            row = rows.get(clip.number)
            if row is not None and _shows(row, clip):
                continue
            file_object = self._file_object(clip)
            if row is None:
                self._create_row(task_page_id, clip, file_object)
            else:
                self._update_row(row, clip, file_object)

    def sync_task(self, task_page_id: str, state: TaskReviewState) -> None:
        """Set the task page's status and review times, and append new error log entries."""
        page = self.gateway.read(
            "read the task page", self.gateway.client.pages.retrieve, page_id=task_page_id
        )
        properties = page.get("properties", {})
        current_log = rich_text_of(properties.get("Error Log", {}))
        new_entries = [entry for entry in state.error_log if entry not in current_log]
        update: dict[str, Any] = {
            "Status": {self.workspace.tasks_status_type: {"name": state.status.label}},
            "Review Started": _date(state.review_started_at),
            "Review Completed": _date(state.review_completed_at),
        }
        if new_entries:
            text = "\n".join([current_log, *new_entries]) if current_log else "\n".join(new_entries)
            update["Error Log"] = {"rich_text": _rich_text(text)}
        if _already(properties, update, self.workspace.tasks_status_type):
            return
        self.gateway.read(
            "update the task page",
            self.gateway.client.pages.update,
            page_id=task_page_id,
            properties=update,
        )

    def changed_task_pages(
        self, labels: Sequence[str], since: datetime | None
    ) -> list[dict[str, Any]]:
        """Task pages whose Status is one of `labels`, edited at or after `since`: one query."""
        kind = self.workspace.tasks_status_type
        status = {"or": [{"property": "Status", kind: {"equals": label}} for label in labels]}
        edited: dict[str, Any] = {
            "timestamp": "last_edited_time",
            "last_edited_time": {"on_or_after": ""},
        }
        query_filter: dict[str, Any] = status
        if since is not None:
            edited["last_edited_time"]["on_or_after"] = since.isoformat()
            query_filter = {"and": [status, edited]}
        return self._query(self.workspace.tasks_source, query_filter, "find changed tasks")

    def task_page(self, task_page_id: str) -> dict[str, Any]:
        page: dict[str, Any] = self.gateway.read(
            "read the task page", self.gateway.client.pages.retrieve, page_id=task_page_id
        )
        return page

    def flagged_rows(self, task_page_id: str, since: datetime | None) -> dict[int, str]:
        """Clips a reviewer flagged on their Video rows, with the row's note.

        A row counts when it is set to rejected, or when a person (not this integration)
        wrote a note on it after the review started: notes are kept across rounds, so an
        older one does not flag the clip again.
        """
        bot = self._bot_id()
        flagged: dict[int, str] = {}
        for number, row in self._rows_by_clip(task_page_id).items():
            properties = row["properties"]
            note = rich_text_of(properties.get("Notes", {})).strip()
            status = (properties.get("Status", {}).get("select") or {}).get("name")
            by_person = (row.get("last_edited_by") or {}).get("id") not in (None, bot)
            # Notion rounds last_edited_time down to the minute.
            recent = since is None or _instant(row["last_edited_time"]) >= since - ONE_MINUTE
            if status == "rejected" or (note and by_person and recent):
                flagged[number] = note
        return flagged

    def _bot_user(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self.gateway.read(
                "read the integration's user", self.gateway.client.users.me
            )
        return self._me

    def _bot_id(self) -> str:
        return str(self._bot_user()["id"])

    def upload_limit_bytes(self) -> int | None:
        """The largest file this workspace takes (None if Notion does not say)."""
        limits = (self._bot_user().get("bot") or {}).get("workspace_limits") or {}
        limit = limits.get("max_file_upload_size_in_bytes")
        return int(limit) if isinstance(limit, int | float) else None

    def _check_upload_sizes(self, clips: Sequence[ClipForReview], channel: str) -> None:
        to_upload = [(clip, clip.local_file) for clip in clips if clip.upload and clip.local_file]
        if not to_upload:
            return
        limit = self.upload_limit_bytes()
        if limit is None:
            return
        for clip, path in to_upload:
            size = path.stat().st_size
            if size > limit:
                raise ConfigurationError(
                    f"clip {clip.number} ({clip.file_name}) is {_megabytes(size)}, more than "
                    f"the {_megabytes(limit)} this Notion workspace takes per file upload "
                    "(a free workspace takes 5 MiB, and only paid workspaces take multi-part "
                    f"uploads); nothing was uploaded. Store channel {channel!r} in R2 "
                    f'instead: CLIPGATE_CHANNEL_STORAGE=\'{{"{channel}": "r2"}}\' with an '
                    "R2 bucket configured, or upgrade the Notion workspace"
                )

    def add_error_log_line(self, task_page_id: str, line: str) -> None:
        """Append one line to the task's Error Log, once."""
        page = self.gateway.read(
            "read the task page", self.gateway.client.pages.retrieve, page_id=task_page_id
        )
        current = rich_text_of(page.get("properties", {}).get("Error Log", {}))
        if line in current:
            return
        text = f"{current}\n{line}" if current else line
        self.gateway.read(
            "write to the Error Log",
            self.gateway.client.pages.update,
            page_id=task_page_id,
            properties={"Error Log": {"rich_text": _rich_text(text)}},
        )

    def _query(self, source: str, query_filter: dict[str, Any], what: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            answer = self.gateway.read(
                what,
                self.gateway.client.data_sources.query,
                data_source_id=source,
                filter=query_filter,
                page_size=100,
                start_cursor=cursor,
            )
            pages.extend(answer.get("results", []))
            if not answer.get("has_more"):
                return pages
            cursor = answer.get("next_cursor")

    def _rows_by_clip(self, task_page_id: str) -> dict[int, dict[str, Any]]:
        rows: dict[int, list[dict[str, Any]]] = {}
        found = self._query(
            self.workspace.videos_source,
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
                self.gateway.read(
                    f"move a duplicate row of clip {number} to the trash",
                    self.gateway.client.pages.update,
                    page_id=duplicate["id"],
                    in_trash=True,
                )
        return kept

    def _file_object(self, clip: ClipForReview) -> dict[str, Any]:
        if not clip.upload:
            if urlsplit(clip.url).scheme not in ("http", "https"):
                raise ConfigurationError(
                    f"clip {clip.number} would be linked in Notion as {clip.url!r}, which "
                    "opens only on this machine; upload it to Notion or store it in R2"
                )
            return {"type": "external", "external": {"url": clip.url}, "name": clip.file_name}
        if clip.local_file is None:
            raise NotionError(f"clip {clip.number} has no local file to upload to Notion")
        upload_id = self._upload(clip.local_file, clip.file_name)
        return {"type": "file_upload", "file_upload": {"id": upload_id}, "name": clip.file_name}

    def _upload(self, path: Path, name: str) -> str:
        # An upload left half-sent costs nothing and expires within the hour, so after a
        # send that may or may not have arrived the upload is simply started again.
        for _ in range(UPLOAD_RESTARTS):
            try:
                return self._upload_once(path, name)
            except AmbiguousWrite:
                continue
        raise NotionError(f"Notion kept failing to take {name}; the run can be retried later")

    def _upload_once(self, path: Path, name: str) -> str:
        size = path.stat().st_size
        client = self.gateway.client.file_uploads
        if size <= SINGLE_PART_LIMIT:
            upload = self._create_upload(
                mode="single_part", filename=name, content_type="video/mp4"
            )
            with path.open("rb") as source:
                self._finish_step(
                    upload["id"], f"send {name}", client.send,
                    file_upload_id=upload["id"], file=(name, source, "video/mp4"),
                )  # fmt: skip
            return str(upload["id"])
        parts = math.ceil(size / PART_BYTES)
        upload = self._create_upload(
            mode="multi_part", filename=name, content_type="video/mp4", number_of_parts=parts
        )
        with path.open("rb") as source:
            for part_number in range(1, parts + 1):
                chunk = source.read(PART_BYTES)
                self.gateway.write_once(
                    f"send part {part_number}/{parts} of {name}", client.send,
                    file_upload_id=upload["id"], file=(name, chunk, "video/mp4"),
                    part_number=str(part_number),
                )  # fmt: skip
        self._finish_step(
            upload["id"], f"complete {name}", client.complete, file_upload_id=upload["id"]
        )
        return str(upload["id"])

    def _finish_step(self, upload_id: str, what: str, call: Any, **arguments: Any) -> None:
        """The step that makes an upload `uploaded`; if it may have happened, ask Notion."""
        try:
            self.gateway.write_once(what, call, **arguments)
        except AmbiguousWrite:
            upload = self.gateway.read(
                "check an upload", self.gateway.client.file_uploads.retrieve,
                file_upload_id=upload_id,
            )  # fmt: skip
            if upload.get("status") != "uploaded":
                raise

    def _create_upload(self, **arguments: Any) -> dict[str, Any]:
        while True:
            try:
                created: dict[str, Any] = self.gateway.write_once(
                    "start a file upload", self.gateway.client.file_uploads.create, **arguments
                )
                return created
            except AmbiguousWrite:
                continue

    def _create_row(
        self, task_page_id: str, clip: ClipForReview, file_object: dict[str, Any]
    ) -> None:
        properties = {
            "Name": {"title": [{"type": "text", "text": {"content": f"Clip {clip.number:02d}"}}]},
            "Clip Number": {"number": clip.number},
            "Task": {"relation": [{"id": task_page_id}]},
            **_clip_properties(clip, file_object),
        }
        while True:
            try:
                self.gateway.write_once(
                    f"create the Video row of clip {clip.number}",
                    self.gateway.client.pages.create,
                    parent={
                        "type": "data_source_id",
                        "data_source_id": self.workspace.videos_source,
                    },
                    properties=properties,
                    children=_video_blocks(clip, file_object),
                )
                return
            except AmbiguousWrite:
                existing = self._rows_by_clip(task_page_id).get(clip.number)
                if existing is not None:
                    if not _shows(existing, clip):
                        self._update_row(existing, clip, file_object)
                    return

    def _update_row(
        self, row: dict[str, Any], clip: ClipForReview, file_object: dict[str, Any]
    ) -> None:
        self.gateway.read(
            f"update the Video row of clip {clip.number}",
            self.gateway.client.pages.update,
            page_id=row["id"],
            properties=_clip_properties(clip, file_object),
        )
        marker = _attempt_heading(clip)
        while True:
            try:
                self.gateway.write_once(
                    f"add the clip {clip.number} attempt {clip.attempt} player",
                    self.gateway.client.blocks.children.append,
                    block_id=row["id"],
                    children=_video_blocks(clip, file_object),
                )
                return
            except AmbiguousWrite:
                if self._has_heading(row["id"], marker):
                    return

    def _has_heading(self, page_id: str, marker: str) -> bool:
        cursor: str | None = None
        while True:
            answer = self.gateway.read(
                "read a Video row's blocks",
                self.gateway.client.blocks.children.list,
                block_id=page_id,
                page_size=100,
                start_cursor=cursor,
            )
            for block in answer.get("results", []):
                texts = block.get(block.get("type", ""), {}).get("rich_text", [])
                if any(text.get("plain_text") == marker for text in texts):
                    return True
            if not answer.get("has_more"):
                return False
            cursor = answer.get("next_cursor")


def rich_text_of(value: dict[str, Any]) -> str:
    """The plain text of a rich_text property value."""
    return "".join(part.get("plain_text", "") for part in value.get("rich_text", []))


def _clip_properties(clip: ClipForReview, file_object: dict[str, Any]) -> dict[str, Any]:
    return {
        "File": {"files": [file_object]},
        "Duration": {"number": round(clip.duration_s, 2)},
        "Generated Date": {"date": {"start": clip.generated_at.isoformat()}},
        "Status": {"select": {"name": "generated"}},
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


def _shows(row: dict[str, Any], clip: ClipForReview) -> bool:
    properties = row.get("properties", {})
    attempt = properties.get("Attempt", {}).get("number")
    files = properties.get("File", {}).get("files", [])
    if attempt != clip.attempt or not files:
        return False
    if clip.upload:
        # Only a file Notion holds counts: an older row may still link elsewhere.
        return any(item.get("type") == "file" for item in files)
    return any(item.get("external", {}).get("url") == clip.url for item in files)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB ({size:,} bytes)"


def _date(moment: datetime | None) -> dict[str, Any]:
    return {"date": {"start": moment.isoformat()} if moment else None}


def _rich_text(text: str) -> list[dict[str, Any]]:
    chunks = [text[start : start + TEXT_LIMIT] for start in range(0, len(text), TEXT_LIMIT)]
    if len(chunks) > RICH_TEXT_OBJECTS:
        raise NotionError(
            f"the Error Log would need {len(chunks)} text objects, more than Notion's "
            f"{RICH_TEXT_OBJECTS}; archive old entries from it in Notion, then rerun"
        )
    return [{"type": "text", "text": {"content": chunk}} for chunk in chunks]


def _already(properties: dict[str, Any], update: dict[str, Any], status_type: str) -> bool:
    if "Error Log" in update:
        return False
    status = (properties.get("Status", {}).get(status_type) or {}).get("name")
    if status != update["Status"][status_type]["name"]:
        return False
    for name in ("Review Started", "Review Completed"):
        wanted = update[name]["date"]
        found = properties.get(name, {}).get("date")
        if (wanted is None) != (found is None):
            return False
        if wanted and found and _instant(wanted["start"]) != _instant(found["start"]):
            return False
    return True


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
