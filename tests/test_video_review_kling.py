"""The gate with Kling as the generator: the local Kling over HTTP, a global limit, costs."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.schemas.objects import TaskRun
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings
from prefect.states import Failed

from clipgate.errors import AccountError, ConfigurationError, TransientGenerationError
from clipgate.gate import costs
from clipgate.generators.kling import KlingConfig
from clipgate.models import VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from clipgate.states import Status
from clipgate.wiring import build_store
from deployments.setup import ensure_concurrency_limits
from prefect_glue.run_settings import GENERATION_LIMITS
from tasks.clips import produce_clip, retry_only_transient
from tests.fakes.kling_server import KlingFake
from tests.flow_helpers import FlowInThread, answer, paused_round

GLOBAL_LIMIT = 2


@pytest.fixture(scope="session")
def kling_stills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for stills Kling accepts (both sides at least 300 px)."""
    return tmp_path_factory.mktemp("kling-stills")


@pytest.fixture
def project(kling_stills: Path) -> VideoProject:
    """A fresh 18-clip project on 480x300 stills, the smallest size class Kling takes."""
    made, _manifest = make_sample_project(
        kling_stills, f"test-{uuid.uuid4().hex[:10]}", width=480, height=300
    )
    return made


@pytest.fixture
def kling(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, prefect_api_url: str
) -> Iterator[KlingFake]:
    """A local Kling with room for 10 tasks, and settings that send every clip to it."""
    with KlingFake(task_seconds=0.3, concurrency_limit=10) as fake:
        for name, value in fake.environment(
            retry_initial_s="0.01", retry_max_s="0.05", poll_initial_s="0.05", poll_max_s="0.1"
        ).items():
            monkeypatch.setenv(name, value)
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
    assert run.finish().status == Status.AUDIO_READY

    assert settings.kling is not None
    price = KlingConfig.model_validate(settings.kling.model_dump()).price_usd
    report = costs(store, project.project_id, prices_are_estimates=True)
    assert report.generations == 21
    assert report.spent_usd == pytest.approx(21 * price)
    assert report.clips_kept_by_reviews == 15
    assert report.saved_usd == pytest.approx(15 * price)
    assert report.estimated
    in_thirty_days = datetime.now(UTC) + timedelta(days=30)
    for attempt in store.generation_attempts(project.project_id):
        assert attempt.provider_url_expires_at is not None
        expires = attempt.provider_url_expires_at.replace(tzinfo=UTC)
        assert in_thirty_days - timedelta(minutes=10) < expires <= in_thirty_days


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


def test_kling_refusing_connections_fails_the_run_at_once_naming_the_address(
    kling: KlingFake, project: VideoProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens at the base URL: every clip fails at once, unretried, saying what to fix."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("CLIPGATE_KLING__BASE_URL", base_url)
    monkeypatch.setenv("CLIPGATE_KLING__MAX_RETRIES", "1")
    monkeypatch.setenv("CLIPGATE_KLING__RETRY_INITIAL_S", "5")
    started = time.monotonic()

    with pytest.raises(Exception, match="18 clip"):
        FlowInThread(project).finish()

    # Were it retried as transient, each clip would wait 2.5-5 s, then 30 and 120 s more.
    assert time.monotonic() - started < 60
    row = build_store(load_settings()).project(project.project_id)
    assert row is not None
    assert row.status == Status.GENERATING_VIDEO
    message = row.error_log[-1]["message"]
    assert f"cannot connect to the Kling API at {base_url}" in message
    assert "CLIPGATE_KLING__BASE_URL" in message
    assert kling.submissions == []


def task_run(run_count: int) -> TaskRun:
    return TaskRun(
        name="clip 7 attempt 2", run_count=run_count, task_key="produce-clip", dynamic_key="0"
    )


@pytest.mark.parametrize(("run_count", "wait", "retry"), [(1, "30", 1), (2, "120", 2)])
def test_a_transient_failure_is_retried_with_a_warning_naming_clip_reason_and_wait(
    caplog: pytest.LogCaptureFixture, run_count: int, wait: str, retry: int
) -> None:
    """Prefect's retry of a busy clip is logged: the clip, Kling's reason, the wait, the count."""
    busy = TransientGenerationError("Kling is busy (HTTP 429, code 1303)")

    with (
        temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}),
        caplog.at_level(logging.WARNING),
    ):
        retried = retry_only_transient(produce_clip, task_run(run_count), Failed(data=busy))

    assert retried
    assert caplog.messages == [
        f"clip 7 attempt 2: Kling is busy (HTTP 429, code 1303); trying again in {wait} s "
        f"(retry {retry} of 2)"
    ]


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("cannot connect to the Kling API at http://127.0.0.1:9"),
        AccountError("the Kling account is in arrears"),
    ],
    ids=["unreachable", "arrears"],
)
def test_a_failure_that_retrying_cannot_fix_is_not_retried(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """Configuration and account errors fail the clip at once, without a retry warning."""
    with caplog.at_level(logging.WARNING):
        assert not retry_only_transient(produce_clip, task_run(1), Failed(data=error))
    assert caplog.messages == []
