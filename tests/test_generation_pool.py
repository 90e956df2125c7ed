"""The flow's thread pool follows the generator's global limit, read when a run starts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipgate.models import CLIP_COUNT, VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from deployments.setup import ensure_concurrency_limits
from prefect_glue.generation_pool import LOCAL_GENERATION_WORKERS, generation_workers
from prefect_glue.run_settings import GENERATION_LIMITS, NOTION_LIMIT
from tests.fakes.kling_server import KlingFake
from tests.flow_helpers import FlowInThread, answer, paused_round

KLING_LIMIT = GENERATION_LIMITS["kling"]


@pytest.fixture
def kling(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[KlingFake]:
    """A local Kling with room for 10 one-second tasks, and settings that send clips to it."""
    with KlingFake(task_seconds=1.0, concurrency_limit=10) as fake:
        for name, value in fake.environment(poll_initial_s="0.05", poll_max_s="0.1").items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.mark.usefixtures("prefect_api_url")
@pytest.mark.parametrize(("slots", "workers"), [(1, 1), (6, 6), (30, CLIP_COUNT)])
def test_a_kling_run_gets_one_worker_per_slot_of_the_limit(
    settings: Settings, slots: int, workers: int
) -> None:
    """The pool is as wide as the server's clipgate-kling limit, never wider than 18 clips."""
    ensure_concurrency_limits({KLING_LIMIT: slots})
    assert generation_workers(settings.model_copy(update={"generator": "kling"})) == workers


@pytest.mark.usefixtures("prefect_api_url")
def test_a_local_run_keeps_four_workers(settings: Settings) -> None:
    """The local generator has no shared limit: four clips at a time, whatever Kling's is."""
    ensure_concurrency_limits({KLING_LIMIT: 9})
    assert settings.generator == "local"
    assert generation_workers(settings) == LOCAL_GENERATION_WORKERS == 4


@pytest.mark.usefixtures("prefect_api_url")
def test_a_run_keeps_as_many_kling_clips_in_flight_as_the_limit_allows(
    kling: KlingFake, tmp_path: Path
) -> None:
    """With the limit at 6, six Kling tasks run at once: the pool of 4 no longer caps them."""
    project: VideoProject
    project, _manifest = make_sample_project(
        tmp_path / "stills", f"test-{uuid.uuid4().hex[:10]}", width=480, height=300
    )
    ensure_concurrency_limits({KLING_LIMIT: 6, NOTION_LIMIT: 1})
    store = build_store(load_settings())
    run = FlowInThread(project)
    answer(paused_round(store, project.project_id, 1), {"decision": "approve"})
    run.finish()
    assert len(kling.submissions) == CLIP_COUNT
    assert kling.peak_in_flight == 6
