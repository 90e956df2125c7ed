"""The gate's bookkeeping on SQLite and on the PostgreSQL server at 127.0.0.1:5432."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from clipgate import gate
from clipgate.clips import ProducedClip
from clipgate.errors import InputError, InvalidTransition
from clipgate.models import AnswerSource, ClipNote, ReviewDecision, VideoProject
from clipgate.states import Status
from clipgate.store import Store, open_store

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on a fresh SQLite file, or in a fresh schema of the local PostgreSQL."""
    if request.param == "sqlite":
        yield open_store(f"sqlite:///{tmp_path / 'gate.db'}")
        return
    schema = f"clipgate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    opened = open_store(f"{POSTGRES}?options=-csearch_path%3D{schema}")
    try:
        yield opened
    finally:
        opened.engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _produced(number: int, attempt: int) -> ProducedClip:
    return ProducedClip(
        number=number,
        attempt=attempt,
        object_key=f"c/p/clip-{number:02d}/attempt-{attempt}.mp4",
        location=f"/clips/c/p/clip-{number:02d}/attempt-{attempt}.mp4",
        url=f"file:///clips/c/p/clip-{number:02d}/attempt-{attempt}.mp4",
        sha256="0" * 64,
        size_bytes=1000,
        duration_s=1.0,
        faststart=True,
        thumbnail_url=f"file:///clips/c/p/clip-{number:02d}/attempt-{attempt}.jpg",
        generator="local",
        generation_seconds=0.1,
    )


def _make_round(store: Store, project: VideoProject, review_round: int) -> list[int]:
    keys = gate.clips_to_make(store, project, review_round)
    gate.start_generation(store, project.project_id, review_round)
    gate.finish_generation(
        store,
        project.project_id,
        review_round,
        [_produced(key.number, key.attempt) for key in keys],
    )
    return [key.number for key in keys]


def _status(store: Store, project_id: str) -> str:
    row = store.project(project_id)
    assert row is not None
    return row.status


def test_first_round_makes_all_clips_then_waits(store: Store, project: VideoProject) -> None:
    """A new project is queued, makes 18 clips at attempt 1, then is video_ready."""
    gate.register_project(store, project, "run-1")
    assert _status(store, project.project_id) == Status.QUEUED
    assert _make_round(store, project, 1) == list(range(1, 19))
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.VIDEO_READY
    assert row.review_started_at is not None
    assert row.flow_run_id == "run-1"
    assert [clip.attempt for clip in store.clips(project.project_id)] == [1] * 18


def test_flag_logs_clips_and_queues_only_them(store: Store, project: VideoProject) -> None:
    """Flagging 5, 12, 17 logs them, queues round 2, and round 2 makes only them at attempt 2."""
    gate.register_project(store, project, None)
    _make_round(store, project, 1)
    decision = ReviewDecision(
        decision="flag", clips=[17, 5, 12, 5], notes=[ClipNote(clip=5, note="jitter")]
    )
    gate.record_decision(store, project.project_id, 1, decision, source=AnswerSource.CLI)
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.QUEUED
    assert row.flagged_clip_numbers == [5, 12, 17]
    assert row.review_round == 2
    assert row.error_log[-1]["clips"] == [5, 12, 17]
    assert row.error_log[-1]["message"] == "Regenerate: clips 5, 12, 17"

    keys = gate.clips_to_make(store, project, 2)
    assert [(key.number, key.attempt) for key in keys] == [(5, 2), (12, 2), (17, 2)]
    _make_round(store, project, 2)
    attempts = {clip.number: clip.attempt for clip in store.clips(project.project_id)}
    assert {number for number, attempt in attempts.items() if attempt == 2} == {5, 12, 17}
    assert _status(store, project.project_id) == Status.VIDEO_READY


def test_error_log_is_append_only(store: Store, project: VideoProject) -> None:
    """Two flag rounds leave two timestamped entries, the first untouched."""
    gate.register_project(store, project, None)
    _make_round(store, project, 1)
    gate.record_decision(
        store, project.project_id, 1, ReviewDecision(decision="flag", clips=[3]), AnswerSource.CLI
    )
    _make_round(store, project, 2)
    first = store.project(project.project_id)
    assert first is not None
    gate.record_decision(
        store,
        project.project_id,
        2,
        ReviewDecision(decision="flag", clips=[3, 4]),
        AnswerSource.CLI,
    )
    row = store.project(project.project_id)
    assert row is not None
    assert len(row.error_log) == 2
    assert row.error_log[0] == first.error_log[0]
    assert [(key.number, key.attempt) for key in gate.clips_to_make(store, project, 3)] == [
        (3, 3),
        (4, 2),
    ]


def test_decisions_are_recorded_once_per_round(store: Store, project: VideoProject) -> None:
    """Recording a round's decision again (a rerun) changes nothing."""
    gate.register_project(store, project, None)
    _make_round(store, project, 1)
    flag = ReviewDecision(decision="flag", clips=[5], reviewer="ana")
    gate.record_decision(store, project.project_id, 1, flag, AnswerSource.CLI)
    gate.record_decision(store, project.project_id, 1, flag, AnswerSource.CLI)
    assert len(store.review_events(project.project_id)) == 1
    assert gate.recorded_decision(store, project.project_id, 1) == flag
    assert gate.recorded_decision(store, project.project_id, 2) is None
    row = store.project(project.project_id)
    assert row is not None
    assert len(row.error_log) == 1


def test_approval_sets_review_evidence(store: Store, project: VideoProject) -> None:
    """Approving moves to video_approved and records who, when and how long."""
    gate.register_project(store, project, None)
    _make_round(store, project, 1)
    gate.record_decision(
        store,
        project.project_id,
        1,
        ReviewDecision(decision="approve", reviewer="ana"),
        AnswerSource.CLI,
    )
    row = store.project(project.project_id)
    assert row is not None
    assert row.status == Status.VIDEO_APPROVED
    assert row.review_completed_at is not None
    (event,) = store.review_events(project.project_id)
    assert (event.decision, event.reviewer, event.source) == ("approve", "ana", AnswerSource.CLI)
    assert event.review_seconds is not None
    assert event.review_seconds >= 0
    gate.start_narration(store, project.project_id)
    gate.start_narration(store, project.project_id)
    assert _status(store, project.project_id) == Status.GENERATING_AUDIO


def test_deciding_before_clips_are_ready_is_refused(store: Store, project: VideoProject) -> None:
    """A decision for a project still queued names both states."""
    gate.register_project(store, project, None)
    with pytest.raises(InvalidTransition, match=r"'queued'.*'video_approved'"):
        gate.record_decision(
            store, project.project_id, 1, ReviewDecision(decision="approve"), AnswerSource.CLI
        )


def test_unknown_project_is_a_clear_error(store: Store) -> None:
    """Operating on a project that was never registered says so."""
    with pytest.raises(InputError, match="no video project 'nope'"):
        gate.start_generation(store, "nope", 1)


def test_review_table_lists_every_clip(store: Store, project: VideoProject) -> None:
    """The pause description links the review room and shows each clip by its room URLs."""
    gate.register_project(store, project, None)
    _make_round(store, project, 1)
    room = "http://127.0.0.1:8780"
    table = gate.review_table(store, project.project_id, 1, room)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "Clip" not in line]
    assert len(rows) == 18 // gate.FORM_COLUMNS
    assert rows[0].startswith("| ![clip 1]")
    assert "| Clips 1-6 | Clips 7-12 | Clips 13-18 |" in table
    media = f"{room}/clips/{project.channel}/{project.project_id}/clip-07/attempt-1"
    assert f"![clip 7]({media}.jpg) [clip 7]({media}.mp4) · 1.0 s |" in table
    assert all(f"[clip {number}]({room}/clips/" in table for number in range(1, 19))
    assert f"({room}/projects/{project.project_id})" in table
    flag_seven = ReviewDecision(decision="flag", clips=[7])
    gate.record_decision(store, project.project_id, 1, flag_seven, AnswerSource.CLI)
    _make_round(store, project, 2)
    remade = gate.review_table(store, project.project_id, 2, room)
    assert "[clip 7](" in remade
    assert "/clip-07/attempt-2.mp4) · 1.0 s · attempt 2 |" in remade
