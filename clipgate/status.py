"""Where projects stand (`clipgate status`), read from the store alone.

Time in status runs from the project's last status change (`updated_at`), and a review
waits from `review_started_at`. Clips made counts the round's own clip keys: all 18 at
attempt 1 in round 1, then the clips the previous round flagged, each at its next attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlmodel import col, select

from clipgate.links import review_page_url
from clipgate.models import CLIP_COUNT, AnswerSource, ClipKey, Decision
from clipgate.states import Status
from clipgate.store import (
    GenerationAttemptRow,
    ProjectRow,
    ReviewEventRow,
    Store,
    as_utc,
    utc_now,
)

# The seed expects a round's generation within 90 minutes; longer looks stuck.
STUCK_AFTER = timedelta(minutes=90)


class ProjectStatus(BaseModel):
    """One project's place in the gate: one line of `clipgate status`."""

    project_id: str
    channel: str
    status: Status
    status_label: str
    review_round: int
    status_since: datetime | None
    in_status_s: float | None
    clips_made: int
    clips_planned: int
    generations: int
    waiting_since: datetime | None
    waiting_s: float | None
    stuck: bool
    flow_run_id: str | None
    created_at: datetime | None


class ClipState(BaseModel):
    """A clip as it is stored now."""

    number: int
    attempt: int
    duration_s: float
    faststart: bool
    url: str


class RoundState(BaseModel):
    """A review round that was answered."""

    review_round: int
    decision: Decision
    clips: list[int]
    reviewer: str
    source: AnswerSource
    decided_at: datetime | None


class ProjectDetail(ProjectStatus):
    """`clipgate status PROJECT`: the line, and the clips, rounds and last error behind it."""

    review_url: str
    flagged_clips: list[int]
    clips: list[ClipState]
    rounds: list[RoundState]
    last_error: str | None


def project_statuses(store: Store, now: datetime | None = None) -> list[ProjectStatus]:
    """Every project, newest first."""
    moment = now or utc_now()
    with store.session() as session:
        projects = list(
            session.exec(select(ProjectRow).order_by(col(ProjectRow.created_at).desc()))
        )
        made = list(session.exec(select(GenerationAttemptRow)))
        events = list(session.exec(select(ReviewEventRow)))
    keys_by_project: dict[str, set[str]] = {}
    for attempt in made:
        keys_by_project.setdefault(attempt.project_id, set()).add(attempt.clip_key)
    events_by_project: dict[str, list[ReviewEventRow]] = {}
    for event in events:
        events_by_project.setdefault(event.project_id, []).append(event)
    return [
        _status(
            project,
            keys_by_project.get(project.project_id, set()),
            events_by_project.get(project.project_id, []),
            moment,
        )
        for project in projects
    ]


def project_detail(
    store: Store, project: ProjectRow, room_url: str, now: datetime | None = None
) -> ProjectDetail:
    """Everything `clipgate status PROJECT` shows about `project`."""
    events = store.review_events(project.project_id)
    made = {attempt.clip_key for attempt in store.generation_attempts(project.project_id)}
    line = _status(project, made, events, now or utc_now())
    errors = [str(entry.get("message", "")) for entry in project.error_log]
    return ProjectDetail(
        **line.model_dump(),
        review_url=review_page_url(room_url, project.project_id),
        flagged_clips=project.flagged_clip_numbers,
        clips=[
            ClipState.model_validate(clip.stored_fields())
            for clip in store.clips(project.project_id)
        ],
        rounds=[
            RoundState(
                review_round=event.review_round,
                decision=event.decision,
                clips=event.clips,
                reviewer=event.reviewer,
                source=event.source,
                decided_at=as_utc(event.decided_at),
            )
            for event in events
        ],
        last_error=errors[-1] if errors else None,
    )


def _status(
    project: ProjectRow, made: set[str], events: Sequence[ReviewEventRow], now: datetime
) -> ProjectStatus:
    status = Status(project.status)
    round_keys = _round_keys(project, events)
    since = as_utc(project.updated_at)
    in_status = (now - since).total_seconds() if since else None
    waiting_since = as_utc(project.review_started_at) if status == Status.VIDEO_READY else None
    return ProjectStatus(
        project_id=project.project_id,
        channel=project.channel,
        status=status,
        status_label=status.label,
        review_round=project.review_round,
        status_since=since,
        in_status_s=in_status,
        clips_made=len(round_keys & made),
        clips_planned=len(round_keys),
        generations=len(made),
        waiting_since=waiting_since,
        waiting_s=(now - waiting_since).total_seconds() if waiting_since else None,
        stuck=status == Status.GENERATING_VIDEO
        and in_status is not None
        and in_status > STUCK_AFTER.total_seconds(),
        flow_run_id=project.flow_run_id,
        created_at=as_utc(project.created_at),
    )


def _round_keys(project: ProjectRow, events: Sequence[ReviewEventRow]) -> set[str]:
    flags = {event.review_round: event.clips for event in events if event.decision == Decision.FLAG}
    review_round = project.review_round
    numbers = (
        range(1, CLIP_COUNT + 1)
        if review_round == 1
        else flags.get(review_round - 1, project.flagged_clip_numbers)
    )
    keys = set()
    for number in numbers:
        earlier = sum(1 for when, clips in flags.items() if when < review_round and number in clips)
        key = ClipKey(
            project_id=project.project_id,
            channel=project.channel,
            number=number,
            attempt=1 + earlier,
        )
        keys.add(key.token)
    return keys


def status_table(statuses: Sequence[ProjectStatus]) -> str:
    """`clipgate status`: one line per project, columns aligned."""
    header = ("PROJECT", "CHANNEL", "STATUS", "ROUND", "IN STATUS", "CLIPS", "WAITING SINCE")
    rows = [header] + [
        (
            line.project_id,
            line.channel,
            line.status_label + (" (stuck?)" if line.stuck else ""),
            str(line.review_round),
            duration(line.in_status_s),
            f"{line.clips_made}/{line.clips_planned}",
            moment(line.waiting_since),
        )
        for line in statuses
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def detail_text(detail: ProjectDetail) -> str:
    """`clipgate status PROJECT`: the project, its round, its clips and its answers."""
    lines = [
        f"project     {detail.project_id} (channel {detail.channel})",
        f"status      {detail.status_label}, round {detail.review_round}, for "
        f"{duration(detail.in_status_s)} (since {moment(detail.status_since)})"
        + (" - generation looks stuck" if detail.stuck else ""),
        f"clips       {detail.clips_made}/{detail.clips_planned} made this round, "
        f"{detail.generations} generations in all",
    ]
    if detail.waiting_since is not None:
        lines.append(
            f"waiting     for review since {moment(detail.waiting_since)} "
            f"({duration(detail.waiting_s)}): {detail.review_url}"
        )
    else:
        lines.append(f"review      {detail.review_url}")
    lines.append(f"flow run    {detail.flow_run_id or '-'}")
    for answered in detail.rounds:
        flagged = f" clips {', '.join(map(str, answered.clips))}" if answered.clips else ""
        who = f" by {answered.reviewer}" if answered.reviewer else ""
        label = f"round {answered.review_round}"
        lines.append(
            f"{label:<11} {answered.decision}{flagged}{who} "
            f"({answered.source}, {moment(answered.decided_at)})"
        )
    if detail.last_error:
        lines.append(f"last error  {detail.last_error}")
    if detail.clips:
        lines.append("clip  attempt  seconds  faststart")
        lines.extend(
            f"{clip.number:>4}  {clip.attempt:>7}  {clip.duration_s:>7.1f}  "
            f"{'yes' if clip.faststart else 'NO'}"
            for clip in detail.clips
        )
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """A span as a person reads it: 45s, 3m 04s, 2h 05m, 3d 04h."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def moment(when: datetime | None) -> str:
    """A timestamp in UTC to the second, or '-'."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "-"
