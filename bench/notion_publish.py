"""Requests and wall time to publish 18 clips to Notion, against the fewest it can take.

The local Notion (tests/fakes/notion_server.py) enforces 3 requests a second, as Notion
does per integration, and the gateway paces to the same rate. The floor is the fewest
requests publishing can need: resolve the two databases' data sources (2), find the
task's existing rows (1), read the workspace's upload limit once when uploading (1), per
clip create an upload, send it and create its row with the player inside (3 x 18; a
linked clip needs only the row: 1 x 18), and update the task page (1); at 3 a second
that count sets the wall-time floor too. Goal: within 1.15x.

Run from the repository root:

    .venv/bin/python -m bench.notion_publish
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from clipgate import gate
from clipgate.clips import ProducedClip
from clipgate.models import CLIP_COUNT, ClipSpec, VideoProject
from clipgate.notion.surface import NotionReviewSurface
from clipgate.notion.sync import sync_project
from clipgate.store import open_store
from tests.notion_workspace import seeded_notion

RATE = 3.0
CLIP_BYTES = 2 * 1024 * 1024


def publish_once(folder: Path, upload: bool) -> tuple[int, float, int]:
    """Publish 18 fresh clips once; (requests sent, seconds, floor in requests)."""
    with seeded_notion() as notion:
        fake = notion.fake
        store = open_store(f"sqlite:///{folder / f'bench-{upload}.db'}")
        project = _project(folder, f"bench-{int(upload)}-{time.time_ns()}")
        gate.register_project(store, project, None)
        gate.start_generation(store, project.project_id, 1)
        gate.finish_generation(store, project.project_id, 1, _clips(folder))
        fake.set_rate_limit(RATE, burst=3)
        time.sleep(1.0)
        config = notion.config.model_copy(update={"requests_per_second": RATE, "timeout_s": 30})
        started = time.perf_counter()
        surface = NotionReviewSurface.connect(config)
        sync_project(surface, store, project.project_id, notion.task_page_id, upload=upload)
        seconds = time.perf_counter() - started
        # Uploading reads the workspace's upload limit (users/me) once first.
        floor = 2 + 1 + (3 if upload else 1) * CLIP_COUNT + 1 + (1 if upload else 0)
        refused = sum(1 for record in fake.requests if record.status == 429)
        assert refused == 0, f"{refused} requests were rate limited"
        return surface.gateway.requests_sent, seconds, floor


def _project(folder: Path, project_id: str) -> VideoProject:
    still = folder / "still.png"
    still.write_bytes(b"")
    return VideoProject(
        project_id=project_id,
        channel="bench",
        clips=[
            ClipSpec(number=n, composite_image=still, motion_prompt="zoom in")
            for n in range(1, CLIP_COUNT + 1)
        ],
    )


def _clips(folder: Path) -> list[ProducedClip]:
    made = []
    for number in range(1, CLIP_COUNT + 1):
        path = folder / f"clip-{number:02d}.mp4"
        path.write_bytes(bytes([number]) * CLIP_BYTES)
        made.append(
            ProducedClip(
                number=number,
                attempt=1,
                object_key=path.name,
                location=str(path),
                url=f"https://clips.example.com/{path.name}",
                sha256="0" * 64,
                size_bytes=CLIP_BYTES,
                duration_s=10.0,
                faststart=True,
                thumbnail_url="",
                generator="local",
                generation_seconds=0.0,
            )
        )
    return made


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        print(f"18 clips to the local Notion at {RATE:.0f} requests/s")
        header = ("requests", "floor", "ratio", "wall s", "floor s", "ratio")
        print(f"{'clips':<16}" + "".join(f"{name:>9}" for name in header))
        for upload, label in ((True, "uploaded"), (False, "linked (R2)")):
            sent, seconds, floor = publish_once(folder, upload)
            floor_s = floor / RATE
            print(
                f"{label:<16}{sent:>9}{floor:>9}{sent / floor:>9.3f}"
                f"{seconds:>9.2f}{floor_s:>9.2f}{seconds / floor_s:>9.3f}"
            )
        print("goal: within 1.15x of the floor")


if __name__ == "__main__":
    main()
