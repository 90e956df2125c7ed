"""The gate with Kling as the generator: the local Kling over HTTP, a global limit, costs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clipgate.gate import costs
from clipgate.generators.kling import KlingConfig
from clipgate.models import VideoProject
from clipgate.settings import Settings, load_settings
from clipgate.states import Status
from clipgate.wiring import build_store
from deployments.setup import ensure_concurrency_limits
from tasks.clips import GENERATION_LIMITS
from tests.fakes.kling_server import KlingFake
from tests.flow_helpers import FlowInThread, answer, paused_round

GLOBAL_LIMIT = 2


@pytest.fixture
def kling(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, prefect_api_url: str
) -> Iterator[KlingFake]:
    """A local Kling with room for 10 tasks, and settings that send every clip to it."""
    with KlingFake(task_seconds=0.3, concurrency_limit=10) as fake:
        monkeypatch.setenv("CLIPGATE_GENERATOR", "kling")
        for name, value in {
            "ACCESS_KEY": fake.access_key,
            "SECRET_KEY": fake.secret_key,
            "BASE_URL": fake.base_url,
            "RETRY_INITIAL_S": "0.01",
            "RETRY_MAX_S": "0.05",
            "POLL_INITIAL_S": "0.05",
            "POLL_MAX_S": "0.1",
        }.items():
            monkeypatch.setenv(f"CLIPGATE_KLING__{name}", value)
        ensure_concurrency_limits({GENERATION_LIMITS["kling"]: GLOBAL_LIMIT})
        yield fake


def test_kling_clips_respect_the_global_limit_and_flags_pay_only_for_flagged(
    kling: KlingFake, project: VideoProject
) -> None:
    """At most 2 Kling tasks in flight from 4 workers; flagging 3 pays for exactly 3 more."""
    settings = load_settings()
    store = build_store(settings)
    run = FlowInThread(project)
    run_id = paused_round(store, project.project_id, 1)
    assert len(kling.submissions) == 18
    assert kling.peak_in_flight == GLOBAL_LIMIT
    first_ids = {submission.external_task_id for submission in kling.submissions}

    answer(run_id, {"decision": "flag", "clips": [4, 11, 16]})
    paused_round(store, project.project_id, 2)
    new = kling.submissions[18:]
    assert len(new) == 3
    assert {submission.external_task_id for submission in new}.isdisjoint(first_ids)
    assert sorted(submission.external_task_id for submission in new) == [
        f"{project.project_id}.clip-{number:02d}.attempt-2" for number in (4, 11, 16)
    ]
    answer(run_id, {"decision": "approve"})
    assert run.finish().status == Status.GENERATING_AUDIO

    assert settings.kling is not None
    price = KlingConfig.model_validate(settings.kling.model_dump()).price_usd
    report = costs(store, project.project_id)
    assert report.generations == 21
    assert report.spent_usd == pytest.approx(21 * price)
    assert report.clips_kept_by_reviews == 15
    assert report.saved_usd == pytest.approx(15 * price)


def test_account_in_arrears_stops_the_run_before_video_ready(
    kling: KlingFake, project: VideoProject
) -> None:
    """Kling's 1101 fails the run with its message; the project never reaches Video Ready."""
    kling.account_error = 1101
    run = FlowInThread(project)
    with pytest.raises(Exception, match="arrears"):
        run.finish()
    row = build_store(load_settings()).project(project.project_id)
    assert row is not None
    assert row.status == Status.GENERATING_VIDEO
    assert "arrears" in row.error_log[-1]["message"]
    assert len(kling.submissions) == 0
