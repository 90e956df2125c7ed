"""What the room's pages show, read from the store: the queue, a project's round, its media.

Plain functions over the store, no web framework: the app renders what they return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import col, select

from clipgate.errors import InputError
from clipgate.gate import RecordedAnswer, audit, latest_answer, recorded_answer
from clipgate.links import clip_url, proxy_url, strip_url, thumbnail_url
from clipgate.models import CLIP_COUNT, ClipKey, Decision, VideoProject
from clipgate.states import Status
from clipgate.status import STUCK_AFTER
from clipgate.store import GenerationAttemptRow, ProjectRow, ReviewEventRow, Store, as_utc, utc_now

WAITING = Status.VIDEO_READY

_SLUG = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_MEDIA_KEY = re.compile(
    rf"^(?P<channel>{_SLUG})/(?P<project>{_SLUG})/clip-(?P<number>\d{{2}})/"
    r"attempt-(?P<attempt>[1-9]\d{0,3})(?P<kind>\.mp4|\.proxy\.mp4|\.jpg|\.strip\.jpg)$"
)
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".proxy.mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".strip.jpg": "image/jpeg",
}


@dataclass(frozen=True)
class QueueRow:
    """One project on the queue page."""

    project_id: str
    channel: str
    status: str
    status_label: str
    tone: str
    review_round: int
    in_status_s: float
    made: int
    planned: int
    last_clip_ago_s: float | None
    failures: int
    stuck: bool
    created_at: datetime | None

    @property
    def waiting(self) -> bool:
        return self.status == WAITING


def queue(store: Store) -> list[QueueRow]:
    """Every project, newest first, with where it stands and how healthy it looks."""
    now = utc_now()
    with store.session() as session:
        projects = list(
            session.exec(select(ProjectRow).order_by(col(ProjectRow.created_at).desc()))
        )
        attempts = list(session.exec(select(GenerationAttemptRow)))
        events = list(session.exec(select(ReviewEventRow)))
    return [_queue_row(project, attempts, events, now) for project in projects]


def _queue_row(
    project: ProjectRow,
    attempts: list[GenerationAttemptRow],
    events: list[ReviewEventRow],
    now: datetime,
) -> QueueRow:
    status = Status(project.status)
    previous_decision = next(
        (
            as_utc(event.decided_at)
            for event in events
            if event.project_id == project.project_id
            and event.review_round == project.review_round - 1
        ),
        None,
    )
    round_started = previous_decision or as_utc(project.created_at) or now
    made_times = [
        made
        for attempt in attempts
        if attempt.project_id == project.project_id
        and (made := as_utc(attempt.created_at)) is not None
    ]
    made_this_round = sum(1 for made in made_times if made >= round_started)
    planned = (
        CLIP_COUNT if project.review_round == 1 else len(project.flagged_clip_numbers) or CLIP_COUNT
    )
    failures = sum(
        1
        for entry in project.error_log
        if entry.get("round") == project.review_round
        and str(entry.get("message", "")).startswith("Generation failed")
    )
    in_status = now - (as_utc(project.updated_at) or now)
    stuck = status == Status.GENERATING_VIDEO and in_status > STUCK_AFTER
    if status == Status.VIDEO_ERROR or stuck or failures:
        tone = "error"
    elif status == WAITING:
        tone = "ready"
    else:
        tone = "ok"
    return QueueRow(
        project_id=project.project_id,
        channel=project.channel,
        status=status.value,
        status_label=status.label,
        tone=tone,
        review_round=project.review_round,
        in_status_s=in_status.total_seconds(),
        made=min(made_this_round, planned),
        planned=planned,
        last_clip_ago_s=(now - max(made_times)).total_seconds() if made_times else None,
        failures=failures,
        stuck=stuck,
        created_at=as_utc(project.created_at),
    )


@dataclass(frozen=True)
class Media:
    """Where the room serves one clip's file and its companions."""

    clip: str
    proxy: str
    thumbnail: str
    strip: str


@dataclass(frozen=True)
class EarlierAttempt:
    """An attempt a reviewer flagged, and what they said about it."""

    attempt: int
    flagged_in_round: int
    notes: list[str]
    media: Media


@dataclass(frozen=True)
class ClipView:
    """One clip of the round under review."""

    number: int
    attempt: int
    duration_s: float
    prompt: str
    media: Media
    earlier: list[EarlierAttempt] = field(default_factory=list)


@dataclass(frozen=True)
class ProjectView:
    """A project's page: its round under review (if any), its clips and its evidence."""

    project_id: str
    channel: str
    status: str
    status_label: str
    review_round: int
    waiting: bool
    answered: RecordedAnswer | None
    clips: list[ClipView]
    rounds: list[dict[str, object]]


def project_view(store: Store, project_id: str, room_url: str) -> ProjectView:
    """Everything the review page shows for `project_id`; InputError if it is unknown."""
    row = store.project(project_id)
    if row is None:
        raise InputError(f"no video project {project_id!r}")
    status = Status(row.status)
    this_round = recorded_answer(store, project_id, row.review_round)
    waiting = status == WAITING and this_round is None
    prompts = _prompts(store, project_id)
    flag_notes = _flag_notes(store.review_events(project_id))
    attempts_by_clip: dict[int, list[int]] = {}
    for made in store.generation_attempts(project_id):
        attempts_by_clip.setdefault(made.clip_number, []).append(made.attempt)
    clips = []
    for clip in store.clips(project_id):
        key = ClipKey(
            project_id=project_id, channel=row.channel, number=clip.number, attempt=clip.attempt
        )
        earlier = [
            EarlierAttempt(
                attempt=attempt,
                flagged_in_round=flag_notes.get((clip.number, attempt), (0, []))[0],
                notes=flag_notes.get((clip.number, attempt), (0, []))[1],
                media=_media(room_url, key.model_copy(update={"attempt": attempt})),
            )
            for attempt in sorted(set(attempts_by_clip.get(clip.number, [])))
            if attempt < clip.attempt
        ]
        clips.append(
            ClipView(
                number=clip.number,
                attempt=clip.attempt,
                duration_s=clip.duration_s,
                prompt=prompts.get(clip.number, ""),
                media=_media(room_url, key),
                earlier=earlier,
            )
        )
    return ProjectView(
        project_id=project_id,
        channel=row.channel,
        status=status.value,
        status_label=status.label,
        review_round=row.review_round,
        waiting=waiting,
        answered=this_round or latest_answer(store, project_id),
        clips=clips,
        rounds=[round_.model_dump(mode="json") for round_ in audit(store, project_id).rounds],
    )


def _media(room_url: str, key: ClipKey) -> Media:
    return Media(
        clip=clip_url(room_url, key),
        proxy=proxy_url(room_url, key),
        thumbnail=thumbnail_url(room_url, key),
        strip=strip_url(room_url, key),
    )


def _prompts(store: Store, project_id: str) -> dict[int, str]:
    spec = store.project_spec(project_id)
    if spec is None:
        return {}
    try:
        project = VideoProject.model_validate(spec)
    except ValidationError:
        return {}
    return {clip.number: clip.motion_prompt for clip in project.clips}


def _flag_notes(events: list[ReviewEventRow]) -> dict[tuple[int, int], tuple[int, list[str]]]:
    """(clip, attempt) -> (the round that flagged that attempt, the notes it gave)."""
    flags_so_far: dict[int, int] = {}
    flagged: dict[tuple[int, int], tuple[int, list[str]]] = {}
    for event in events:
        if event.decision != Decision.FLAG:
            continue
        for number in event.clips:
            flags_so_far[number] = flags_so_far.get(number, 0) + 1
            notes = [
                str(note.get("note", ""))
                for note in event.notes
                if note.get("clip") == number and note.get("note")
            ]
            flagged[(number, flags_so_far[number])] = (event.review_round, notes)
    return flagged


@dataclass(frozen=True)
class MediaFile:
    """A stored file the room may send: found by clip key, inside the clip store."""

    key: ClipKey
    object_key: str
    content_type: str
    path: Path | None
    sha256: str | None
    remote_url: str | None


def media_file(store: Store, clips_dir: Path, object_key: str) -> MediaFile:
    """Resolve a media path to a stored file by its clip key; InputError if it names none.

    The path is only ever parsed into a clip key; the file is found from that key, and
    must lie inside `clips_dir`.
    """
    parsed = _MEDIA_KEY.match(object_key)
    if parsed is None:
        raise InputError(f"{object_key!r} is not the key of a clip, proxy, thumbnail or strip")
    number, attempt = int(parsed["number"]), int(parsed["attempt"])
    if not 1 <= number <= CLIP_COUNT:
        raise InputError(f"clip {number} is outside 1-{CLIP_COUNT}")
    project = store.project(parsed["project"])
    if project is None or project.channel != parsed["channel"]:
        raise InputError(f"no video project {parsed['channel']}/{parsed['project']}")
    key = ClipKey(
        project_id=project.project_id, channel=project.channel, number=number, attempt=attempt
    )
    made = next(
        (row for row in store.generation_attempts(key.project_id) if row.clip_key == key.token),
        None,
    )
    if made is None:
        raise InputError(f"clip {number} attempt {attempt} of {key.project_id} was never made")
    kind = parsed["kind"]
    stored_key = {
        ".mp4": key.object_key,
        ".proxy.mp4": key.proxy_key,
        ".jpg": key.thumbnail_key,
        ".strip.jpg": key.strip_key,
    }[kind]
    sha256 = made.sha256 if kind == ".mp4" else None
    if made.file.startswith("r2://"):
        return MediaFile(key, stored_key, MEDIA_TYPES[kind], None, sha256, remote_url=stored_key)
    root = clips_dir.resolve()
    path = (root / stored_key).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise InputError(f"{stored_key} is not in the clip store")
    return MediaFile(key, stored_key, MEDIA_TYPES[kind], path, sha256, remote_url=None)
