"""What clipgate reads back from Notion: queries in full, task pages, plain values.

Every read is safe to repeat, so each goes through `NotionGateway.send_repeatable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clipgate.notion.gateway import NotionGateway
from clipgate.notion.schema import Workspace


def query_all(
    gateway: NotionGateway, source: str, query_filter: dict[str, Any], what: str
) -> list[dict[str, Any]]:
    """Every page of a data source that matches `query_filter`, over all result pages."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        answer = gateway.send_repeatable(
            what,
            gateway.client.data_sources.query,
            data_source_id=source,
            filter=query_filter,
            page_size=100,
            start_cursor=cursor,
        )
        pages.extend(answer.get("results", []))
        if not answer.get("has_more"):
            return pages
        cursor = answer.get("next_cursor")


def changed_task_pages(
    gateway: NotionGateway, workspace: Workspace, labels: Sequence[str], since: datetime | None
) -> list[dict[str, Any]]:
    """Task pages whose Status is one of `labels`, edited at or after `since`: one query."""
    kind = workspace.tasks_status_type
    status = {"or": [{"property": "Status", kind: {"equals": label}} for label in labels]}
    query_filter: dict[str, Any] = status
    if since is not None:
        edited = {
            "timestamp": "last_edited_time",
            "last_edited_time": {"on_or_after": since.isoformat()},
        }
        query_filter = {"and": [status, edited]}
    return query_all(gateway, workspace.tasks_source, query_filter, "find changed tasks")


def read_task_page(gateway: NotionGateway, task_page_id: str) -> dict[str, Any]:
    """The task page with its properties."""
    page: dict[str, Any] = gateway.send_repeatable(
        "read the task page", gateway.client.pages.retrieve, page_id=task_page_id
    )
    return page


def rich_text_of(value: dict[str, Any]) -> str:
    """The plain text of a rich_text property value."""
    return "".join(part.get("plain_text", "") for part in value.get("rich_text", []))


def parse_instant(value: str) -> datetime:
    """A time as Notion writes it (ISO 8601, `Z` for UTC)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
