"""The video-review flow end to end on a real Prefect server, real ffmpeg and real files."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import pytest

from clipgate import mp4
from clipgate.errors import AnswerRefused
from clipgate.models import VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_store
from flows.video_review import video_review
from prefect_glue.answers import answer_review, waiting_review_key
from tests.flow_helpers import (
    FlowInThread,
    answer,
    eventually,
    generations,
    paused_round,
    review_description,
)


@pytest.mark.usefixtures("prefect_api_url")
def test_flag_then_approve_remakes_only_flagged_clips(
    settings: Settings, project: VideoProject
) -> None:
    """Flagging 5, 12, 17 runs the generator 3 more times; approval narrates every clip."""
    store = build_store(settings)
    run = FlowInThread(project)
    run_id = paused_round(store, project.project_id, 1)
    assert generations(store, project.project_id) == 18
    description = eventually(lambda: review_description(run_id, 1), "the form")
    assert description.count("/attempt-1.mp4)") == 18
    assert description.count("/attempt-1.jpg)") == 18

    answer(run_id, {"decision": "flag", "clips": [17, 5, 12, 5], "reviewer": "ana"})
    paused_round(store, project.project_id, 2)
    assert generations(store, project.project_id) == 21
    assert "clip-05/attempt-2.mp4" in review_description(run_id, 2)

    answer(run_id, {"decision": "approve", "reviewer": "ana"})
    summary = run.finish()

    assert summary.status == "audio_ready"
    assert [round_["decision"] for round_ in summary.rounds] == ["flag", "approve"]
    assert summary.rounds[0]["clips"] == [5, 12, 17]
    attempts = {clip.number: clip.attempt for clip in summary.clips}
    assert attempts == {n: 2 if n in (5, 12, 17) else 1 for n in range(1, 19)}
    for clip in summary.clips:
        info = mp4.inspect(Path(clip.location))
        assert info.faststart
        assert clip.duration_s == pytest.approx(1.0, abs=0.15)
        assert clip.location.endswith(f"clip-{clip.number:02d}/attempt-{clip.attempt}.mp4")
    assert len(summary.narration) == 18
    for audio in summary.narration:
        with wave.open(audio) as spoken:
            assert spoken.getnframes() / spoken.getframerate() > 1.0


@pytest.mark.usefixtures("prefect_api_url")
def test_second_run_of_a_project_generates_nothing(
    settings: Settings, project: VideoProject
) -> None:
    """A new flow run for a reviewed project reuses every clip and replays the decisions."""
    store = build_store(settings)
    first = FlowInThread(project)
    run_id = paused_round(store, project.project_id, 1)
    answer(run_id, {"decision": "flag", "clips": [2, 9]})
    paused_round(store, project.project_id, 2)
    answer(run_id, {"decision": "approve"})
    first.finish()
    made = generations(store, project.project_id)
    assert made == 20

    again = video_review(project)

    assert generations(store, project.project_id) == made
    assert again.clips == first.finish().clips
    assert again.status == "audio_ready"


BAD_ANSWERS: list[dict[str, Any]] = [
    {"decision": "flag", "clips": [19]},
    {"decision": "flag", "clips": [0]},
    {"decision": "flag", "clips": []},
    {"decision": "flag"},
    {"decision": "approve", "clips": [3]},
    {"decision": "maybe"},
    {"decision": "flag", "clips": [5], "notes": [{"clip": 20, "note": "x"}]},
]


@pytest.mark.usefixtures("prefect_api_url")
def test_bad_review_input_is_refused_and_the_run_keeps_waiting(
    settings: Settings, project: VideoProject
) -> None:
    """The server refuses input that breaks the form's rules; the run stays paused."""
    store = build_store(settings)
    run = FlowInThread(project)
    run_id = paused_round(store, project.project_id, 1)
    eventually(lambda: review_description(run_id, 1), "the form to be stored")
    for bad_answer in BAD_ANSWERS:
        with pytest.raises(AnswerRefused, match="Cannot resume"):
            answer_review(run_id, bad_answer)
        assert waiting_review_key(run_id) == "review-1", bad_answer
    answer(run_id, {"decision": "approve"})
    assert run.finish().status == "audio_ready"
