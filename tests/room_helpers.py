"""A review room over a real store and real clips, for the room's HTTP and browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from clipgate import clips, gate
from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_generator, build_storage, build_store
from room.server import start_room


def make_round_one(settings: Settings, project: VideoProject) -> None:
    """Register `project` and make its 18 clips with the local generator, as the flow would."""
    store = build_store(settings)
    gate.register_project(store, project, None)
    keys = gate.clips_to_make(store, project, 1)
    gate.start_generation(store, project.project_id, 1)
    generator = build_generator(settings)
    storage = build_storage(settings, project.channel)
    with ThreadPoolExecutor(max_workers=3) as pool:
        produced = list(
            pool.map(
                lambda key: clips.produce_clip(
                    project, key, generator, storage, store, settings.work_dir
                ),
                keys,
            )
        )
    gate.finish_generation(store, project.project_id, 1, produced)


@contextmanager
def running_room(settings: Settings, host: str = "127.0.0.1") -> Iterator[str]:
    """The room on a free port for the duration; yields its base URL."""
    room = start_room(settings, host=host, port=0)
    try:
        yield room.url
    finally:
        room.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    if not CHROMIUM.exists():
        raise AssertionError(
            f"no Chromium at {CHROMIUM}: the review room's browser tests need Debian's "
            "chromium (`apt-get install -y chromium`; scripts/test installs it when it can)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshots_dir(fallback: Path) -> Path:
    """Where screenshots go: $CLIPGATE_SCREENSHOTS, else a folder of this test run."""
    folder = Path(os.environ.get("CLIPGATE_SCREENSHOTS") or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
