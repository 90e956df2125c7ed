"""The shape the Tasks and Videos databases must have, how to create it, and how to check it.

The Tasks side of the Tasks-Videos relation is made by Notion when `init` creates the
Videos database. `init` asks for the name "Videos" (`synced_property_name`), but Notion
does not document that it keeps the name (a Tasks property may already be called so), so
that relation is always found by the data source it points to, under any name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clipgate.errors import ConfigurationError
from clipgate.notion.gateway import NotionGateway
from clipgate.states import NOTION_LABELS


class VideoRowStatus(StrEnum):
    """The Status select of a Video row: clipgate sets generated, a reviewer may reject."""

    PENDING = "pending"
    GENERATED = "generated"
    APPROVED = "approved"
    REJECTED = "rejected"


VIDEO_STATUSES = tuple(status.value for status in VideoRowStatus)

VIDEOS_PROPERTIES: dict[str, str] = {
    "Name": "title",
    "Clip Number": "number",
    "File": "files",
    "Task": "relation",
    "Duration": "number",
    "Generated Date": "date",
    "Status": "select",
    "Notes": "rich_text",
    "Attempt": "number",
}

TASKS_PROPERTIES: dict[str, tuple[str, ...]] = {
    "Status": ("status", "select"),
    "Error Log": ("rich_text",),
    "Review Started": ("date",),
    "Review Completed": ("date",),
}


@dataclass(frozen=True)
class CreatedVideos:
    """What `init` made: the Videos database and the name Notion gave its Tasks relation."""

    database_id: str
    tasks_relation_name: str


@dataclass(frozen=True)
class Workspace:
    """The data sources behind the two databases, resolved once per run."""

    tasks_source: str
    videos_source: str
    tasks_status_type: str


def data_source_of(gateway: NotionGateway, database_id: str, name: str) -> str:
    """The id of the (first) data source of a database."""
    database = gateway.send_repeatable(
        f"open the {name} database", gateway.client.databases.retrieve, database_id=database_id
    )
    sources = database.get("data_sources") or []
    if not sources:
        raise ConfigurationError(f"the {name} database {database_id} has no data source")
    return str(sources[0]["id"])


def schema_problems(
    gateway: NotionGateway, tasks_database_id: str, videos_database_id: str
) -> tuple[list[str], Workspace | None]:
    """Everything missing or of the wrong type in both databases, and the workspace if sound."""
    tasks_source = data_source_of(gateway, tasks_database_id, "Tasks")
    tasks = _properties(gateway, tasks_source, "Tasks")
    problems = []
    for name, types in TASKS_PROPERTIES.items():
        problems.extend(_property_problem("Tasks", tasks, name, types))
    status = tasks.get("Status", {})
    if status.get("type") in ("status", "select"):
        options = {option["name"] for option in status[status["type"]].get("options", [])}
        missing = [label for label in NOTION_LABELS.values() if label not in options]
        if "Videos Ready" in options and "Video Ready" in missing:
            missing.remove("Video Ready")
        if missing:
            problems.append(f"Tasks: property 'Status' lacks the options {missing}")
    if not videos_database_id:
        problems.append(
            "Videos: no database configured; run `clipgate notion init --parent PAGE_ID`"
        )
        return problems, None
    videos_source = data_source_of(gateway, videos_database_id, "Videos")
    videos = _properties(gateway, videos_source, "Videos")
    for name, kind in VIDEOS_PROPERTIES.items():
        problems.extend(_property_problem("Videos", videos, name, (kind,)))
    relation = videos.get("Task", {}).get("relation", {})
    if relation and relation.get("data_source_id") not in (None, tasks_source):
        problems.append("Videos: property 'Task' must relate to the Tasks database")
    if relation_to(tasks, videos_source) is None:
        problems.append(
            "Tasks: no relation property points to the Videos database; make 'Task' on "
            "Videos a two-way relation (show it on Tasks), or run `clipgate notion init`"
        )
    select = videos.get("Status", {}).get("select", {})
    if select:
        options = {option["name"] for option in select.get("options", [])}
        lacking = [status for status in VIDEO_STATUSES if status not in options]
        if lacking:
            problems.append(f"Videos: property 'Status' lacks the options {lacking}")
    if problems:
        return problems, None
    return [], Workspace(tasks_source, videos_source, str(status["type"]))


def relation_to(properties: dict[str, Any], target_source: str) -> str | None:
    """The name of the relation property pointing at `target_source`, whatever it is called."""
    for name, spec in properties.items():
        target = spec.get("relation", {}).get("data_source_id")
        if spec.get("type") == "relation" and target == target_source:
            return name
    return None


def create_videos_database(
    gateway: NotionGateway, parent_page_id: str, tasks_database_id: str
) -> CreatedVideos:
    """Create the Videos database under a page, related both ways to Tasks."""
    tasks_source = data_source_of(gateway, tasks_database_id, "Tasks")
    properties: dict[str, Any] = {
        "Name": {"title": {}},
        "Clip Number": {"number": {"format": "number"}},
        "File": {"files": {}},
        "Duration": {"number": {"format": "number"}},
        "Generated Date": {"date": {}},
        "Status": {"select": {"options": [{"name": status} for status in VIDEO_STATUSES]}},
        "Notes": {"rich_text": {}},
        "Attempt": {"number": {"format": "number"}},
        "Task": {
            "relation": {
                "data_source_id": tasks_source,
                "type": "dual_property",
                "dual_property": {"synced_property_name": "Videos"},
            }
        },
    }
    created = gateway.write_once(
        "create the Videos database",
        gateway.client.databases.create,
        parent={"type": "page_id", "page_id": parent_page_id},
        title=[{"type": "text", "text": {"content": "Videos"}}],
        initial_data_source={"properties": properties},
    )
    videos_source = str(created["data_sources"][0]["id"])
    tasks = _properties(gateway, tasks_source, "Tasks")
    tasks_relation_name = relation_to(tasks, videos_source)
    if tasks_relation_name is None:
        raise ConfigurationError(
            "Notion created the Videos database but no relation to it on Tasks; "
            "open the Task property of Videos in Notion and turn on 'Show on Tasks'"
        )
    additions: dict[str, Any] = {}
    for name, kind in (
        ("Error Log", "rich_text"),
        ("Review Started", "date"),
        ("Review Completed", "date"),
    ):
        if name not in tasks:
            additions[name] = {kind: {}}
    if additions:
        gateway.send_repeatable(
            "add review properties to Tasks",
            gateway.client.data_sources.update,
            data_source_id=tasks_source,
            properties=additions,
        )
    return CreatedVideos(str(created["id"]), tasks_relation_name)


def _properties(gateway: NotionGateway, source: str, name: str) -> dict[str, Any]:
    described = gateway.send_repeatable(
        f"read the {name} schema", gateway.client.data_sources.retrieve, data_source_id=source
    )
    properties: dict[str, Any] = described.get("properties", {})
    return properties


def _property_problem(
    database: str, properties: dict[str, Any], name: str, types: tuple[str, ...]
) -> list[str]:
    wanted = " or ".join(types)
    if name not in properties:
        return [f"{database}: property '{name}' is missing (needs type {wanted})"]
    found = properties[name].get("type")
    if found not in types:
        return [f"{database}: property '{name}' is {found}, needs type {wanted}"]
    return []
