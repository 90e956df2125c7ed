"""The status state machine: every allowed move, and refusals that name both states."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from clipgate import gate
from clipgate.errors import InvalidTransition
from clipgate.models import VideoProject
from clipgate.states import ALLOWED, Status, check_transition, status_from_label
from clipgate.store import ProjectRow, open_store

EXPECTED_MOVES = {
    ("queued", "generating_video"),
    ("generating_video", "video_ready"),
    ("video_ready", "video_approved"),
    ("video_ready", "video_error"),
    ("video_error", "queued"),
    ("video_approved", "generating_audio"),
    ("generating_audio", "audio_ready"),
}


@pytest.mark.parametrize(("current", "requested"), sorted(EXPECTED_MOVES))
def test_allowed_moves_pass(current: str, requested: str) -> None:
    """Each move of the design's state machine is allowed."""
    check_transition(Status(current), Status(requested))


@pytest.mark.parametrize(
    ("current", "requested"),
    [
        (a.value, b.value)
        for a, b in itertools.product(Status, Status)
        if (a.value, b.value) not in EXPECTED_MOVES
    ],
)
def test_every_other_move_is_refused(current: str, requested: str) -> None:
    """Any move outside the machine raises an error naming both states."""
    with pytest.raises(InvalidTransition) as raised:
        check_transition(Status(current), Status(requested))
    assert repr(current) in str(raised.value)
    assert repr(requested) in str(raised.value)


def test_machine_is_exactly_the_designed_one() -> None:
    """No extra move slipped into the allowed set."""
    assert {(a.value, b.value) for a, b in ALLOWED} == EXPECTED_MOVES


@pytest.mark.parametrize(
    ("label", "status"),
    [
        ("Video Ready", Status.VIDEO_READY),
        ("Videos Ready", Status.VIDEO_READY),
        ("video approved", Status.VIDEO_APPROVED),
        ("Video Error", Status.VIDEO_ERROR),
        ("Queued", Status.QUEUED),
        ("Generating Audio", Status.GENERATING_AUDIO),
        ("Audio Ready", Status.AUDIO_READY),
    ],
)
def test_notion_labels_read_both_spellings(label: str, status: Status) -> None:
    """Notion labels map to statuses, including the seed's "Videos Ready"."""
    assert status_from_label(label) is status
    assert status_from_label(status.label) is status


def test_unknown_label_is_refused() -> None:
    """A label that is no status is an error listing the real ones."""
    with pytest.raises(ValueError, match="Video Ready"):
        status_from_label("Done")


def test_finishing_narration_ends_in_audio_ready_once(
    tmp_path: Path, project: VideoProject
) -> None:
    """Narration's end moves generating_audio to audio_ready; finishing again changes nothing."""
    store = open_store(f"sqlite:///{tmp_path / 'gate.db'}")
    gate.register_project(store, project, None)
    with store.session() as session:
        row = session.get(ProjectRow, project.project_id)
        assert row is not None
        row.status = Status.GENERATING_AUDIO
        session.add(row)
        session.commit()

    gate.finish_narration(store, project.project_id, ["a.wav"])
    gate.finish_narration(store, project.project_id, ["a.wav"])

    finished = store.project(project.project_id)
    assert finished is not None
    assert finished.status == Status.AUDIO_READY
    assert finished.step_metadata["narration"]["files"] == ["a.wav"]
