"""SIGKILL at every step of a review round, then the documented recovery.

Each row kills a real process (the flow's, or the one answering it) at one step, then
recovers with `clipgate recover` and answers the reviews through the normal answer
path. Every row must end exactly as an undisturbed run: 18 + 2 generations, each clip
recorded before the crash left untouched, both answers applied once, narration done,
and the dead run marked crashed in Prefect.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from clipgate.models import AnswerSource, VideoProject
from clipgate.settings import Settings
from clipgate.states import Status
from clipgate.store import Store
from clipgate.wiring import build_store
from deployments.recover import recover_project
from prefect_glue.answers import submit_answer, waiting_review_key
from tests.flow_helpers import InThread, paused_round

pytestmark = pytest.mark.end_to_end

FLAG = {"decision": "flag", "clips": [5, 12], "reviewer": "ana"}
APPROVE = {"decision": "approve", "reviewer": "ana"}


def _crashing(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crashing", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
    )


def _killed(process: subprocess.Popen[str]) -> None:
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == -signal.SIGKILL, output[-3000:]


def _answer_when_waiting(settings: Settings, project_id: str, review_round: int) -> None:
    store = build_store(settings)
    paused_round(store, project_id, review_round)
    answer = FLAG if review_round == 1 else APPROVE
    outcome = submit_answer(settings, project_id, answer, AnswerSource.CLI, review_round)
    assert outcome.accepted, outcome.message
    assert outcome.delivered, outcome.message


def _answer_missing_rounds(settings: Settings, project_id: str) -> None:
    store = build_store(settings)
    for review_round in (1, 2):
        if len(store.review_events(project_id)) < review_round:
            _answer_when_waiting(settings, project_id, review_round)


def _recover_and_answer(settings: Settings, project_id: str) -> str:
    out = io.StringIO()
    recovery = InThread(lambda: recover_project(settings, project_id, out))
    _answer_missing_rounds(settings, project_id)
    assert recovery.finish() == 0
    return out.getvalue()


def _state_name(run_id: str) -> str:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    assert state is not None
    return state.type.value


def _generations_before(store: Store, project_id: str) -> dict[str, tuple[str, Any]]:
    return {
        attempt.clip_key: (attempt.sha256, attempt.created_at)
        for attempt in store.generation_attempts(project_id)
    }


def _assert_as_undisturbed(
    store: Store, project_id: str, before: dict[str, tuple[str, Any]], crashed_run: str
) -> None:
    attempts = store.generation_attempts(project_id)
    assert len(attempts) == 18 + 2
    after = {attempt.clip_key: (attempt.sha256, attempt.created_at) for attempt in attempts}
    assert {key: after[key] for key in before} == before, "recovery remade a finished clip"
    events = store.review_events(project_id)
    assert [(event.decision, event.clips) for event in events] == [
        ("flag", [5, 12]),
        ("approve", []),
    ]
    row = store.project(project_id)
    assert row is not None
    assert row.status == Status.AUDIO_READY
    assert {clip.number: clip.attempt for clip in store.clips(project_id)} == {
        number: 2 if number in (5, 12) else 1 for number in range(1, 19)
    }
    assert len(row.step_metadata["narration"]["files"]) == 18
    assert row.flow_run_id != crashed_run
    assert _state_name(crashed_run) == "CRASHED"


def _manifest(project: VideoProject, tmp_path: Path) -> str:
    path = tmp_path / "manifest.json"
    path.write_text(project.model_dump_json())
    return str(path)


def _run_id(store: Store, project_id: str) -> str:
    row = store.project(project_id)
    assert row is not None
    assert row.flow_run_id is not None
    return row.flow_run_id


@pytest.mark.usefixtures("prefect_api_url")
@pytest.mark.parametrize(
    ("step", "nth"),
    [("generating", 6), ("before-faststart", 6), ("storing", 6), ("after-recording", 6)],
)
def test_killed_while_making_clips(
    step: str, nth: int, settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """A kill while round 1's clips are made: recover makes only the missing ones."""
    store = build_store(settings)
    _killed(_crashing(step, str(nth), "flow", _manifest(project, tmp_path)))
    crashed_run = _run_id(store, project.project_id)
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.GENERATING_VIDEO
    before = _generations_before(store, project.project_id)
    assert len(before) < 18

    _recover_and_answer(settings, project.project_id)

    _assert_as_undisturbed(store, project.project_id, before, crashed_run)


@pytest.mark.usefixtures("prefect_api_url")
def test_killed_while_waiting_keeps_the_answer(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """An answer to a run whose process died is recorded, and recover applies it once."""
    store = build_store(settings)
    flow = _crashing("none", "0", "flow", _manifest(project, tmp_path))
    crashed_run = paused_round(store, project.project_id, 1)
    flow.kill()
    _killed(flow)

    outcome = submit_answer(settings, project.project_id, FLAG, AnswerSource.CLI)
    assert outcome.accepted
    assert not outcome.delivered
    assert f"clipgate recover {project.project_id}" in outcome.message
    again = submit_answer(settings, project.project_id, APPROVE, AnswerSource.ROOM, 1)
    assert not again.accepted
    assert "ana via cli" in again.message
    assert "flag clips 5, 12" in again.message
    before = _generations_before(store, project.project_id)

    said = _recover_and_answer(settings, project.project_id)

    assert "1 recorded answer(s) replayed" in said
    _assert_as_undisturbed(store, project.project_id, before, crashed_run)


@pytest.mark.usefixtures("prefect_api_url")
def test_answerer_killed_between_recording_and_resuming(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """An answer recorded by a process that died before resuming is handed over by recover."""
    store = build_store(settings)
    flow = _crashing("none", "0", "flow", _manifest(project, tmp_path))
    run_id = paused_round(store, project.project_id, 1)
    _killed(_crashing("delivering", "1", "cli", "review", project.project_id, "--flag", "5,12"))
    assert [event.clips for event in store.review_events(project.project_id)] == [[5, 12]]
    assert waiting_review_key(run_id) == "review-1"

    out = io.StringIO()
    assert recover_project(settings, project.project_id, out) == 0
    assert "run" in out.getvalue()
    assert "resumed" in out.getvalue()
    _answer_when_waiting(settings, project.project_id, 2)

    output, _ = flow.communicate(timeout=180)
    assert flow.returncode == 0, output[-3000:]
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.AUDIO_READY
    assert len(store.generation_attempts(project.project_id)) == 20
    assert len(store.review_events(project.project_id)) == 2


@pytest.mark.usefixtures("prefect_api_url")
def test_killed_while_narrating(settings: Settings, project: VideoProject, tmp_path: Path) -> None:
    """A kill during narration: recover replays both answers and finishes the narration."""
    store = build_store(settings)
    flow = _crashing("narrating", "3", "flow", _manifest(project, tmp_path))
    _answer_when_waiting(settings, project.project_id, 1)
    _answer_when_waiting(settings, project.project_id, 2)
    _killed(flow)
    crashed_run = _run_id(store, project.project_id)
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.GENERATING_AUDIO
    before = _generations_before(store, project.project_id)

    said = _recover_and_answer(settings, project.project_id)

    assert "2 recorded answer(s) replayed" in said
    _assert_as_undisturbed(store, project.project_id, before, crashed_run)


@pytest.mark.usefixtures("prefect_api_url")
def test_second_run_of_a_live_project_is_refused(
    settings: Settings, project: VideoProject, tmp_path: Path
) -> None:
    """While a run of the project is alive, another run stops at once and names it."""
    store = build_store(settings)
    flow = _crashing("none", "0", "flow", _manifest(project, tmp_path))
    run_id = paused_round(store, project.project_id, 1)
    second = _crashing("none", "0", "flow", _manifest(project, tmp_path))
    output, _ = second.communicate(timeout=180)
    assert second.returncode != 0
    assert f"already being run by flow run {run_id}" in output
    flow.kill()
    _killed(flow)
