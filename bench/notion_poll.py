"""Requests one Notion poll sends with 1,000 reviews waiting (goal: 11 or fewer).

The local Notion (tests/fakes/notion_server.py) holds 1,000 task pages in Video Ready,
each the page of a project waiting for review in a SQLite store. Three polls are counted:
nothing changed; 10 reviewers approved; all 1,000 approved at once (the worst case, where
the one query takes 10 pages of 100 results).

Run from the repository root:

    .venv/bin/python -m bench.notion_poll
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from notion_client import Client

from clipgate import gate
from clipgate.models import CLIP_COUNT, ClipSpec, VideoProject
from clipgate.notion.poll import read_answers
from clipgate.notion.surface import NotionReviewSurface
from clipgate.store import Store, open_store
from tests.fakes.notion_server import FakeNotion
from tests.notion_workspace import seeded_notion

WAITING = 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, seeded_notion() as notion:
        folder = Path(scratch)
        fake = notion.fake
        store = open_store(f"sqlite:///{folder / 'poll.db'}")
        pages = _waiting_projects(fake, notion.tasks_source, store, folder)
        surface = NotionReviewSurface.connect(notion.config)
        client = Client(auth=fake.token, base_url=fake.base_url)

        print(f"{WAITING} reviews waiting in the local Notion")
        print(f"{'poll':<34}{'requests':>9}{'answers':>9}")
        for label, approve in (
            ("nothing changed", 0),
            ("10 approved", 10),
            ("all approved", WAITING),
        ):
            for page_id in pages[:approve]:
                client.pages.update(
                    page_id=page_id, properties={"Status": {"status": {"name": "Video Approved"}}}
                )
            before = surface.gateway.requests_sent
            answers = read_answers(surface, store, None, frozenset())
            print(f"{label:<34}{surface.gateway.requests_sent - before:>9}{len(answers):>9}")
        print("goal: 11 requests or fewer per poll")


def _waiting_projects(fake: FakeNotion, tasks_source: str, store: Store, folder: Path) -> list[str]:
    client = Client(auth=fake.token, base_url=fake.base_url)
    still = folder / "still.png"
    still.write_bytes(b"")
    clips = [
        ClipSpec(number=number, composite_image=still, motion_prompt="zoom")
        for number in range(1, CLIP_COUNT + 1)
    ]
    pages = []
    for index in range(WAITING):
        page = client.pages.create(
            parent={"type": "data_source_id", "data_source_id": tasks_source},
            properties={
                "Title": {"title": [{"text": {"content": f"Video {index}"}}]},
                "Status": {"status": {"name": "Video Ready"}},
            },
        )
        page_id = str(page["id"])  # type: ignore[index]
        project = VideoProject(
            project_id=f"bench-{index}", channel="bench", clips=clips, notion_page_id=page_id
        )
        gate.register_project(store, project, f"run-{index}")
        gate.start_generation(store, project.project_id, 1)
        gate.finish_generation(store, project.project_id, 1, [])
        pages.append(page_id)
    return pages


if __name__ == "__main__":
    main()
