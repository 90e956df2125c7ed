"""The review gate's bookkeeping: rounds, statuses, decisions, all idempotent.

Every function here can run again after a crash, a retry or a suspended run that
restarts from the top, and leaves the database as one run would have: a step that
already happened for a round is skipped, never repeated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, select

from clipgate.clips import ProducedClip
from clipgate.errors import InputError, InvalidTransition
from clipgate.links import clip_url, review_page_url, thumbnail_url
from clipgate.liveness import is_alive, this_process
from clipgate.models import (
    CLIP_COUNT,
    AnswerSource,
    ClipKey,
    Decision,
    ReviewDecision,
    StoredClip,
    VideoProject,
)
from clipgate.states import Status, check_transition
from clipgate.store import (
    ClipRow,
    ProjectRow,
    ProjectSpecRow,
    ReviewEventRow,
    RunHeartbeatRow,
    Store,
    as_utc,
    utc_now,
)


def register_project(store: Store, project: VideoProject, flow_run_id: str | None) -> None:
    """Create the project (status queued, round 1) if new, and note which run drives it.

    A project is driven by one run at a time: while another run's process is alive, a
    second run is refused with a message naming the first.
    """
    with store.session() as session:
        beat = session.get(RunHeartbeatRow, project.project_id)
        if beat is not None and beat.flow_run_id != flow_run_id and is_alive(beat):
            raise InputError(
                f"project {project.project_id} is already being run by flow run "
                f"{beat.flow_run_id} (process {beat.pid} on {beat.host}); wait for it to "
                f"finish, or answer its review with `clipgate review {project.project_id}`"
            )
        if flow_run_id:
            session.merge(this_process(project.project_id, flow_run_id))
        session.merge(
            ProjectSpecRow(project_id=project.project_id, spec=project.model_dump(mode="json"))
        )
        row = session.get(ProjectRow, project.project_id, with_for_update=True)
        if row is None:
            now = utc_now()
            row = ProjectRow(
                project_id=project.project_id,
                channel=project.channel,
                status=Status.QUEUED,
                created_at=now,
                updated_at=now,
            )
        elif row.channel != project.channel:
            raise InputError(
                f"project {project.project_id} belongs to channel {row.channel!r}, "
                f"not {project.channel!r}; use a new project id for another channel"
            )
        if flow_run_id:
            row.flow_run_id = flow_run_id
        row.notion_page_id = project.notion_page_id
        session.add(row)
        session.commit()


def clips_to_make(store: Store, project: VideoProject, review_round: int) -> list[ClipKey]:
    """The clip keys round `review_round` needs: all 18 first, then the ones flagged last round.

    Attempts are derived from the recorded decisions, so a rerun computes the same keys.
    """
    flagged_in = {
        event.review_round: event.clips
        for event in store.review_events(project.project_id)
        if event.decision == Decision.FLAG
    }
    if review_round == 1:
        numbers = list(range(1, CLIP_COUNT + 1))
    else:
        numbers = sorted(flagged_in.get(review_round - 1, []))
    keys = []
    for number in numbers:
        earlier_flags = sum(
            1
            for round_number, clips in flagged_in.items()
            if round_number < review_round and number in clips
        )
        keys.append(
            ClipKey(
                project_id=project.project_id,
                channel=project.channel,
                number=number,
                attempt=1 + earlier_flags,
            )
        )
    return keys


def start_generation(store: Store, project_id: str, review_round: int) -> None:
    """queued -> generating_video for this round; nothing if the round is past that."""
    with store.session() as session:
        row = _locked_project(session, project_id)
        if row.review_round == review_round and row.status == Status.QUEUED:
            _move(row, Status.GENERATING_VIDEO)
            session.add(row)
            session.commit()


def finish_generation(
    store: Store, project_id: str, review_round: int, produced: Sequence[ProducedClip]
) -> None:
    """Record the round's clips and move generating_video -> video_ready, starting the review."""
    with store.session() as session:
        row = _locked_project(session, project_id)
        if row.review_round != review_round or row.status != Status.GENERATING_VIDEO:
            return
        now = utc_now()
        for clip in produced:
            session.merge(ClipRow(project_id=project_id, updated_at=now, **clip.stored_fields()))
        _move(row, Status.VIDEO_READY)
        row.review_started_at = now
        row.review_completed_at = None
        row.step_metadata = {
            **row.step_metadata,
            "video_generation": {
                "round": review_round,
                "clips_made": sorted(clip.number for clip in produced),
                "seconds": round(sum(clip.generation_seconds for clip in produced), 3),
                "bytes": sum(clip.size_bytes for clip in produced),
                "finished_at": now.isoformat(),
            },
        }
        session.add(row)
        session.commit()


def record_generation_failures(
    store: Store, project_id: str, review_round: int, failures: Sequence[str]
) -> None:
    """Log clips the generator could not make; the project stays out of Video Ready."""
    with store.session() as session:
        row = _locked_project(session, project_id)
        now = utc_now()
        row.error_log = [
            *row.error_log,
            {
                "at": now.isoformat(),
                "round": review_round,
                "clips": [],
                "notes": [],
                "reviewer": "",
                "message": "Generation failed: " + "; ".join(failures),
            },
        ]
        row.updated_at = now
        session.add(row)
        session.commit()


class RecordedAnswer(BaseModel):
    """The answer that decided a review round, and who gave it where."""

    review_round: int
    decision: ReviewDecision
    source: AnswerSource
    reviewer: str
    decided_at: datetime

    def describe(self) -> str:
        """One sentence for people: who answered which round how, and when."""
        who = self.reviewer or "someone"
        what = (
            "approve"
            if self.decision.approved
            else "flag clips " + ", ".join(str(clip) for clip in self.decision.clips)
        )
        return (
            f"round {self.review_round} was answered by {who} via {self.source} at "
            f"{self.decided_at:%Y-%m-%d %H:%M:%S} UTC: {what}"
        )


class RecordingOutcome(BaseModel):
    """What recording an answer did: `accepted` is False when the round was decided before."""

    accepted: bool
    decided_by: RecordedAnswer


def recorded_answer(store: Store, project_id: str, review_round: int) -> RecordedAnswer | None:
    """The answer already recorded for a round (a rerun replays it instead of waiting)."""
    for event in store.review_events(project_id):
        if event.review_round == review_round:
            return _as_answer(event)
    return None


def latest_answer(store: Store, project_id: str) -> RecordedAnswer | None:
    """The newest recorded answer of a project, if any."""
    events = store.review_events(project_id)
    return _as_answer(events[-1]) if events else None


def recorded_decision(store: Store, project_id: str, review_round: int) -> ReviewDecision | None:
    """The decision already recorded for a round (a rerun replays it instead of waiting)."""
    answer = recorded_answer(store, project_id, review_round)
    return answer.decision if answer else None


def record_decision(
    store: Store,
    project_id: str,
    review_round: int,
    decision: ReviewDecision,
    source: AnswerSource,
) -> RecordingOutcome:
    """End a review round: approve, or flag clips (video_error, logged, then queued again).

    A round is decided once, by the first answer recorded; a later answer changes nothing
    and gets back the one that decided. An answer for a round that is not waiting for
    review is refused.
    """
    with store.session() as session:
        row = _locked_project(session, project_id)
        already = session.exec(
            select(ReviewEventRow).where(
                ReviewEventRow.project_id == project_id,
                ReviewEventRow.review_round == review_round,
            )
        ).first()
        if already is not None:
            return RecordingOutcome(accepted=False, decided_by=_as_answer(already))
        if row.review_round != review_round:
            raise InputError(
                f"project {project_id} is not waiting for review round {review_round}: "
                f"it is in round {row.review_round}, status {row.status}"
            )
        if row.status != Status.VIDEO_READY:
            target = Status.VIDEO_APPROVED if decision.approved else Status.VIDEO_ERROR
            raise InvalidTransition(row.status, target)
        now = utc_now()
        started = as_utc(row.review_started_at)
        notes = [note.model_dump() for note in decision.notes]
        event = ReviewEventRow(
            project_id=project_id,
            review_round=review_round,
            decision=decision.decision,
            clips=decision.clips,
            notes=notes,
            reviewer=decision.reviewer,
            source=source,
            review_started_at=started,
            decided_at=now,
            review_seconds=round((now - started).total_seconds(), 3) if started else None,
        )
        session.add(event)
        row.review_completed_at = now
        if decision.approved:
            _move(row, Status.VIDEO_APPROVED)
            row.flagged_clip_numbers = []
        else:
            _move(row, Status.VIDEO_ERROR)
            row.flagged_clip_numbers = list(decision.clips)
            row.error_log = [
                *row.error_log,
                _error_log_entry(now.isoformat(), review_round, decision, notes),
            ]
            _move(row, Status.QUEUED)
            row.review_round = review_round + 1
        session.add(row)
        session.commit()
        return RecordingOutcome(accepted=True, decided_by=_as_answer(event))


def _as_answer(event: ReviewEventRow) -> RecordedAnswer:
    return RecordedAnswer(
        review_round=event.review_round,
        decision=ReviewDecision(
            decision=Decision(event.decision),
            clips=event.clips,
            notes=event.notes,
            reviewer=event.reviewer,
        ),
        source=AnswerSource(event.source),
        reviewer=event.reviewer,
        decided_at=as_utc(event.decided_at) or utc_now(),
    )


def start_narration(store: Store, project_id: str) -> None:
    """video_approved -> generating_audio; nothing if narration already started."""
    with store.session() as session:
        row = _locked_project(session, project_id)
        if row.status == Status.VIDEO_APPROVED:
            _move(row, Status.GENERATING_AUDIO)
            session.add(row)
            session.commit()


def finish_narration(store: Store, project_id: str, audio_files: Sequence[str]) -> None:
    """Note where the narration files are: generating_audio -> audio_ready, once."""
    with store.session() as session:
        row = _locked_project(session, project_id)
        if row.status == Status.GENERATING_AUDIO:
            _move(row, Status.AUDIO_READY)
        row.step_metadata = {
            **row.step_metadata,
            "narration": {"files": list(audio_files), "finished_at": utc_now().isoformat()},
        }
        row.updated_at = utc_now()
        session.add(row)
        session.commit()


class ProjectSummary(BaseModel):
    """Where a project stands, for people and for the demo's JSON."""

    project_id: str
    status: Status
    review_round: int
    flow_run_id: str | None
    rounds: list[dict[str, Any]]
    generations: int
    clips: list[StoredClip]
    narration: list[str]
    error_log: list[dict[str, Any]]


def summarize(store: Store, project_id: str) -> ProjectSummary:
    row = store.project(project_id)
    if row is None:
        raise InputError(f"no video project {project_id!r} in the store")
    return ProjectSummary(
        project_id=project_id,
        status=row.status,
        review_round=row.review_round,
        flow_run_id=row.flow_run_id,
        rounds=[
            {"decision": event.decision, "clips": event.clips, "reviewer": event.reviewer}
            for event in store.review_events(project_id)
        ],
        generations=len(store.generation_attempts(project_id)),
        clips=[StoredClip.model_validate(clip.stored_fields()) for clip in store.clips(project_id)],
        narration=row.step_metadata.get("narration", {}).get("files", []),
        error_log=row.error_log,
    )


class CostReport(BaseModel):
    """What a project's clips cost, and what partial regeneration saved.

    `estimated` is true when the figures come from list prices, not the account's own.
    """

    project_id: str
    generations: int
    spent_usd: float
    clips_kept_by_reviews: int
    saved_usd: float
    estimated: bool


def costs(store: Store, project_id: str, *, prices_are_estimates: bool) -> CostReport:
    """Spend so far, and the savings of remaking only flagged clips instead of all 18.

    A clip kept through a flag round is one generation not paid for; it is valued at the
    project's average cost per generation. Nothing spent is exact, whatever the prices.
    """
    if store.project(project_id) is None:
        raise InputError(f"no video project {project_id!r} in the store")
    attempts = store.generation_attempts(project_id)
    spent = sum(attempt.cost_usd for attempt in attempts)
    per_clip = spent / len(attempts) if attempts else 0.0
    kept = sum(
        CLIP_COUNT - len(event.clips)
        for event in store.review_events(project_id)
        if event.decision == Decision.FLAG
    )
    return CostReport(
        project_id=project_id,
        generations=len(attempts),
        spent_usd=round(spent, 4),
        clips_kept_by_reviews=kept,
        saved_usd=round(kept * per_clip, 4),
        estimated=prices_are_estimates and spent > 0,
    )


# The Prefect UI shows the pause description in a box of a few hundred pixels above the
# form, gives a table its own scroll box, merges columns with the same heading and shows
# no image inside a link: three columns of six clips, each with its own heading, fit.
FORM_COLUMNS = 3


def review_table(store: Store, project_id: str, review_round: int, room_url: str) -> str:
    """Markdown for the resume form: a link to the review room and a compact grid of clips."""
    page = review_page_url(room_url, project_id)
    row = store.project(project_id)
    channel = row.channel if row else ""
    clips = store.clips(project_id)
    per_column = max(1, math.ceil(len(clips) / FORM_COLUMNS))
    columns = [clips[first : first + per_column] for first in range(0, len(clips), per_column)]

    def cell(clip: ClipRow) -> str:
        key = ClipKey(
            project_id=project_id, channel=channel, number=clip.number, attempt=clip.attempt
        )
        remade = f" · attempt {clip.attempt}" if clip.attempt > 1 else ""
        return (
            f"![clip {clip.number}]({thumbnail_url(room_url, key)}) "
            f"[clip {clip.number}]({clip_url(room_url, key)}) · {clip.duration_s:.1f} s{remade}"
        )

    lines = [
        f"### Round {review_round} of `{project_id}`",
        "",
        f"**[Open the review room]({page})** to watch at 2x and answer there, or answer "
        "below: **approve**, or **flag** clips 1-18. Clips are in attempt 1 unless marked.",
        "",
        "| " + " | ".join(f"Clips {c[0].number}-{c[-1].number}" for c in columns) + " |",
        "|" + ":---|" * len(columns),
    ]
    for index in range(per_column):
        cells = [cell(column[index]) if index < len(column) else "" for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class AuditRound(BaseModel):
    """One review round as the evidence shows it."""

    review_round: int
    decision: Decision
    clips: list[int]
    notes: list[dict[str, Any]]
    reviewer: str
    source: AnswerSource
    review_started_at: datetime | None
    decided_at: datetime | None
    review_seconds: float | None


class ProjectAudit(BaseModel):
    """Every decided review round of a project: who decided what, when, and how long it took."""

    project_id: str
    channel: str
    status: Status
    rounds: list[AuditRound]

    def markdown(self) -> str:
        """The evidence as a markdown table, for the Prefect artifact and the terminal."""
        lines = [
            f"## Review evidence: project `{self.project_id}`",
            "",
            f"Channel `{self.channel}`, status **{Status(self.status).label}**.",
            "",
            "| Round | Decision | Clips | Notes | Reviewer | Source | Started | Decided "
            "| Review time |",
            "|---:|---|---|---|---|---|---|---|---:|",
        ]
        for round_ in self.rounds:
            notes = "; ".join(
                f"{note.get('clip')}: {note.get('note')}"
                for note in round_.notes
                if note.get("note")
            )
            lines.append(
                f"| {round_.review_round} | {round_.decision} | "
                f"{', '.join(str(clip) for clip in round_.clips) or '-'} | "
                f"{_cell(notes) or '-'} | {_cell(round_.reviewer) or '-'} | {round_.source} | "
                f"{_moment(round_.review_started_at)} | {_moment(round_.decided_at)} | "
                f"{_duration(round_.review_seconds)} |"
            )
        if not self.rounds:
            lines.append("| - | no round decided yet | | | | | | | |")
        return "\n".join(lines)


def audit(store: Store, project_id: str) -> ProjectAudit:
    """The evidence of a project's reviews; InputError if the project is unknown."""
    row = store.project(project_id)
    if row is None:
        raise InputError(f"no video project {project_id!r} in the store")
    return ProjectAudit(
        project_id=project_id,
        channel=row.channel,
        status=row.status,
        rounds=[
            AuditRound(
                review_round=event.review_round,
                decision=event.decision,
                clips=event.clips,
                notes=event.notes,
                reviewer=event.reviewer,
                source=event.source,
                review_started_at=as_utc(event.review_started_at),
                decided_at=as_utc(event.decided_at),
                review_seconds=event.review_seconds,
            )
            for event in store.review_events(project_id)
        ],
    )


def _cell(text: str) -> str:
    # A pipe or a line break would end the markdown table cell early.
    return " ".join(text.replace("|", "\\|").split())


def _moment(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _error_log_entry(
    at: str, review_round: int, decision: ReviewDecision, notes: list[dict[str, Any]]
) -> dict[str, Any]:
    clip_list = ", ".join(str(number) for number in decision.clips)
    return {
        "at": at,
        "round": review_round,
        "clips": decision.clips,
        "notes": notes,
        "reviewer": decision.reviewer,
        "message": f"Regenerate: clips {clip_list}",
    }


def _locked_project(session: Session, project_id: str) -> ProjectRow:
    row = session.get(ProjectRow, project_id, with_for_update=True)
    if row is None:
        raise InputError(f"no video project {project_id!r} in the store; register it first")
    return row


def _move(row: ProjectRow, requested: Status) -> None:
    check_transition(Status(row.status), requested)
    row.status = requested
    row.updated_at = utc_now()
