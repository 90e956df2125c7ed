"""The review surface in Notion: one Video row per clip, and the task page's review state.

Every method converges: run it again after any failure and Notion ends as one clean run
would leave it. The parts live beside this module: `rows` (the Video rows), `uploads`
(the File Upload API) and `reads` (queries and plain values); this module puts them
together and keeps the task page.

A row shows its clip one of three ways: uploaded to Notion (File Upload API), linked where
it is stored (R2), or linked to the review room's page for the project. Only http(s)
addresses are ever written: a `file://` address would open nowhere but on this machine.
Uploads respect the workspace's own limit (`users/me` `workspace_limits`, read once):
a clip over it stops the publish before anything is uploaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from clipgate.errors import ConfigurationError, PermanentNotionError
from clipgate.notion import reads
from clipgate.notion.gateway import NotionConfig, NotionGateway
from clipgate.notion.reads import parse_instant, rich_text_of
from clipgate.notion.rows import ClipForReview, VideoRows, shows
from clipgate.notion.schema import Workspace, schema_problems
from clipgate.notion.uploads import FileUploads
from clipgate.states import Status

TEXT_LIMIT = 2000
RICH_TEXT_OBJECTS = 100


@dataclass(frozen=True)
class TaskReviewState:
    """What the task page shows of the review."""

    status: Status
    error_log: Sequence[str]
    review_started_at: datetime | None
    review_completed_at: datetime | None


class NotionReviewSurface:
    """Publishes clips and review state to one workspace, and reads the reviewers' answers."""

    def __init__(self, gateway: NotionGateway, workspace: Workspace) -> None:
        self.gateway = gateway
        self.workspace = workspace
        self.rows = VideoRows(gateway, workspace.videos_source)
        self.uploads = FileUploads(gateway)
        self._me: dict[str, Any] | None = None

    @classmethod
    def connect(
        cls, config: NotionConfig, sleep: Callable[[float], None] = time.sleep
    ) -> NotionReviewSurface:
        """Check both databases and stop with every problem listed if the set-up is wrong.

        `sleep` is how the gateway waits (see `NotionGateway`).
        """
        gateway = NotionGateway(config, sleep)
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
        rows = self.rows.by_clip(task_page_id)
        for clip in sorted(clips, key=lambda clip: clip.number):
            row = rows.get(clip.number)
            if row is not None and shows(row, clip):
                continue
            file_object = self._file_object(clip)
            if row is None:
                self.rows.create(task_page_id, clip, file_object)
            else:
                self.rows.update(row, clip, file_object)

    def sync_task(self, task_page_id: str, state: TaskReviewState) -> None:
        """Set the task page's status and review times, and append new error log entries."""
        properties = self.task_page(task_page_id).get("properties", {})
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
        self.gateway.send_repeatable(
            "update the task page",
            self.gateway.client.pages.update,
            page_id=task_page_id,
            properties=update,
        )

    def add_error_log_line(self, task_page_id: str, line: str) -> None:
        """Append one line to the task's Error Log, once."""
        properties = self.task_page(task_page_id).get("properties", {})
        current = rich_text_of(properties.get("Error Log", {}))
        if line in current:
            return
        text = f"{current}\n{line}" if current else line
        self.gateway.send_repeatable(
            "write to the Error Log",
            self.gateway.client.pages.update,
            page_id=task_page_id,
            properties={"Error Log": {"rich_text": _rich_text(text)}},
        )

    def changed_task_pages(
        self, labels: Sequence[str], since: datetime | None
    ) -> list[dict[str, Any]]:
        """Task pages whose Status is one of `labels`, edited at or after `since`: one query."""
        return reads.changed_task_pages(self.gateway, self.workspace, labels, since)

    def task_page(self, task_page_id: str) -> dict[str, Any]:
        """The task page with its properties."""
        return reads.read_task_page(self.gateway, task_page_id)

    def flagged_rows(self, task_page_id: str, since: datetime | None) -> dict[int, str]:
        """Clips a reviewer flagged on their Video rows since `since`, with the row's note."""
        return self.rows.flagged(task_page_id, since, str(self._bot_user()["id"]))

    def upload_limit_bytes(self) -> int | None:
        """The largest file this workspace takes (None if Notion does not say)."""
        limits = (self._bot_user().get("bot") or {}).get("workspace_limits") or {}
        limit = limits.get("max_file_upload_size_in_bytes")
        return int(limit) if isinstance(limit, int | float) else None

    def _bot_user(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self.gateway.send_repeatable(
                "read the integration's user", self.gateway.client.users.me
            )
        return self._me

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

    def _file_object(self, clip: ClipForReview) -> dict[str, Any]:
        if not clip.upload:
            if urlsplit(clip.url).scheme not in ("http", "https"):
                raise ConfigurationError(
                    f"clip {clip.number} would be linked in Notion as {clip.url!r}, which "
                    "opens only on this machine; upload it to Notion or store it in R2"
                )
            return {"type": "external", "external": {"url": clip.url}, "name": clip.file_name}
        if clip.local_file is None:
            raise PermanentNotionError(f"clip {clip.number} has no local file to upload to Notion")
        upload_id = self.uploads.upload(clip.local_file, clip.file_name)
        return {"type": "file_upload", "file_upload": {"id": upload_id}, "name": clip.file_name}


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB ({size:,} bytes)"


def _date(moment: datetime | None) -> dict[str, Any]:
    return {"date": {"start": moment.isoformat()} if moment else None}


def _rich_text(text: str) -> list[dict[str, Any]]:
    chunks = [text[start : start + TEXT_LIMIT] for start in range(0, len(text), TEXT_LIMIT)]
    if len(chunks) > RICH_TEXT_OBJECTS:
        raise PermanentNotionError(
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
        if wanted and found and parse_instant(wanted["start"]) != parse_instant(found["start"]):
            return False
    return True
