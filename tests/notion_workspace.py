"""A seeded local Notion for tests: Tasks and Videos databases and one task page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from notion_client import Client
from pydantic import SecretStr

from clipgate.notion.gateway import NotionConfig, NotionGateway
from clipgate.notion.schema import create_videos_database, data_source_of
from deployments.setup import ensure_concurrency_limits
from tasks.publish import NOTION_LIMIT
from tests.fakes.notion_server import FakeNotion, running_fake_notion


@dataclass
class Workspace:
    """A seeded local Notion: Tasks and Videos databases and one task page."""

    fake: FakeNotion
    parent_page_id: str
    config: NotionConfig
    tasks_source: str
    videos_source: str
    task_page_id: str

    def configure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point clipgate's settings at this workspace, with the Notion limit in place."""
        for name, value in {
            "TOKEN": self.config.token.get_secret_value(),
            "TASKS_DATABASE_ID": self.config.tasks_database_id,
            "VIDEOS_DATABASE_ID": self.config.videos_database_id,
            "BASE_URL": self.config.base_url,
            "REQUESTS_PER_SECOND": "50",
        }.items():
            monkeypatch.setenv(f"CLIPGATE_NOTION__{name}", value)
        ensure_concurrency_limits({NOTION_LIMIT: 1})


def _new_task_page(fake: FakeNotion, tasks_source: str, title: str) -> str:
    client = Client(auth=fake.token, base_url=fake.base_url)
    page: Any = client.pages.create(
        parent={"type": "data_source_id", "data_source_id": tasks_source},
        properties={
            "Title": {"title": [{"text": {"content": title}}]},
            "Status": {"status": {"name": "Queued"}},
        },
    )
    return str(page["id"])


@contextmanager
def seeded_notion() -> Iterator[Workspace]:
    """The local Notion with the Tasks database, a Videos database made by init, one task."""
    with running_fake_notion(fault_delay_s=1.5) as fake:
        seeded = fake.seed_workspace(token=fake.token)
        base = NotionConfig(
            token=SecretStr(fake.token),
            tasks_database_id=seeded.tasks_database_id,
            base_url=fake.base_url,
            requests_per_second=50,
            timeout_s=1.0,
        )
        videos = create_videos_database(
            NotionGateway(base), seeded.parent_page_id, seeded.tasks_database_id
        )
        config = base.model_copy(update={"videos_database_id": videos})
        yield Workspace(
            fake=fake,
            parent_page_id=seeded.parent_page_id,
            config=config,
            tasks_source=seeded.tasks_data_source_id,
            videos_source=data_source_of(NotionGateway(config), videos, "Videos"),
            task_page_id=_new_task_page(fake, seeded.tasks_data_source_id, "Video 1"),
        )


def notion_rows(notion: Workspace) -> dict[int, dict[str, Any]]:
    """The task's Video rows by clip number; fails on a duplicate."""
    rows: dict[int, dict[str, Any]] = {}
    for page in notion.fake.pages_in(notion.videos_source):
        simple = notion.fake.simple_properties(page["id"])
        if notion.task_page_id in simple["Task"]:
            number = int(simple["Clip Number"])
            assert number not in rows, f"duplicate row for clip {number}"
            rows[number] = {"id": page["id"], **simple, "page": page}
    return rows
