"""Shared fixtures: one real Prefect server per session, small clips, a fresh home per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from clipgate.models import VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from tests.fakes.notion_server import FakeNotion, SeededWorkspace, running_fake_notion
from tests.notion_workspace import Workspace, seeded_notion

SMALL_CLIPS = {
    "CLIPGATE_CLIP_SECONDS": "1",
    "CLIPGATE_CLIP_WIDTH": "160",
    "CLIPGATE_CLIP_HEIGHT": "90",
    "CLIPGATE_CLIP_FPS": "10",
    "CLIPGATE_REVIEW_POLL_INTERVAL_S": "1",
    "CLIPGATE_REVIEW_TIMEOUT_S": "600",
}


@pytest.fixture(scope="session", autouse=True)
def retries_without_waits() -> Iterator[None]:
    """Retries keep each policy's attempts (up to 100) but never wait: stamina's test mode."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A real Prefect server (SQLite, random port) for the whole test session."""
    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        assert url
        yield url


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for small, fast clips in a fresh home folder."""
    monkeypatch.setenv("CLIPGATE_HOME", str(tmp_path / "home"))
    for name, value in SMALL_CLIPS.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.fixture(scope="session")
def stills_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of sample stills shared by every test."""
    return tmp_path_factory.mktemp("stills")


@pytest.fixture
def project(stills_dir: Path) -> VideoProject:
    """A fresh 18-clip project on small sample stills."""
    made, _manifest = make_sample_project(
        stills_dir, f"test-{uuid.uuid4().hex[:10]}", width=160, height=90
    )
    return made


@pytest.fixture
def notion() -> Iterator[Workspace]:
    """The local Notion with the Tasks database, a Videos database made by init, one task."""
    with seeded_notion() as workspace:
        yield workspace


@pytest.fixture
def fake() -> Iterator[FakeNotion]:
    """A running fake Notion for one test, driven directly (no seeded Videos database)."""
    with running_fake_notion() as server:
        yield server


@pytest.fixture
def workspace(fake: FakeNotion) -> SeededWorkspace:
    """The seeded parent page and Tasks database of `fake`."""
    return fake.seed_workspace()
