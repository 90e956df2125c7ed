"""A seeded local Notion for tests: Tasks and Videos databases and one task page."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from notion_client import Client
from pydantic import SecretStr

from clipgate import gate
from clipgate.clips import ProducedClip
from clipgate.models import VideoProject
from clipgate.notion.gateway import NotionConfig, NotionGateway
from clipgate.notion.schema import create_videos_database, data_source_of
from clipgate.store import Store
from deployments.setup import ensure_concurrency_limits
from prefect_glue.run_settings import NOTION_LIMIT
from tests.fakes.notion_server import FakeNotion, running_fake_notion


class SyncNotion:
    """A sync notion-client Client whose calls type as plain JSON, not maybe-awaitable."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


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


def new_task_page(fake: FakeNotion, tasks_source: str, title: str) -> str:
    """A task page in the Tasks data source, made through the API; its id."""
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
        ).database_id
        config = base.model_copy(update={"videos_database_id": videos})
        yield Workspace(
            fake=fake,
            parent_page_id=seeded.parent_page_id,
            config=config,
            tasks_source=seeded.tasks_data_source_id,
            videos_source=data_source_of(NotionGateway(config), videos, "Videos"),
            task_page_id=new_task_page(fake, seeded.tasks_data_source_id, "Video 1"),
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


def stored_clips(folder: Path, number_attempts: dict[int, int]) -> list[ProducedClip]:
    """Small clip files in `folder` as the gate records them (local storage, file:// URLs)."""
    clips = []
    for number, attempt in number_attempts.items():
        path = folder / f"clip-{number:02d}-attempt-{attempt}.mp4"
        path.write_bytes(f"clip {number} attempt {attempt} ".encode() * 200)
        clips.append(
            ProducedClip(
                number=number,
                attempt=attempt,
                object_key=path.name,
                location=str(path),
                url=path.as_uri(),
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                size_bytes=path.stat().st_size,
                duration_s=10.0,
                faststart=True,
                thumbnail_url="",
                generator="local",
                generation_seconds=0.1,
            )
        )
    return clips


def reviewed_project(
    store: Store, project: VideoProject, folder: Path, flow_run_id: str | None = None
) -> None:
    """A project whose 18 clips are made and waiting for review."""
    gate.register_project(store, project, flow_run_id)
    gate.start_generation(store, project.project_id, 1)
    gate.finish_generation(
        store, project.project_id, 1, stored_clips(folder, dict.fromkeys(range(1, 19), 1))
    )


@dataclass
class Received:
    """One webhook request as the subscriber saw it."""

    at: float
    event: dict[str, Any]
    signature: str
    body: bytes


@dataclass
class Subscriber:
    """A local webhook endpoint that keeps what it receives."""

    url: str
    received: list[Received] = field(default_factory=list)

    def wait_for(self, count: int, timeout_s: float = 10) -> list[Received]:
        """The deliveries so far, once there are `count` (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@contextmanager
def webhook_subscriber(
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Subscriber]:
    """An HTTP endpoint on 127.0.0.1 that hands each delivery to `on_event`, then keeps it."""
    subscriber = Subscriber(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            event = json.loads(body)
            if on_event is not None:
                on_event(event)
            signature = self.headers.get("X-Notion-Signature", "")
            subscriber.received.append(Received(time.monotonic(), event, signature, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Deliveries are kept in `subscriber.received`, not printed."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    subscriber.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield subscriber
    finally:
        server.shutdown()
        server.server_close()
