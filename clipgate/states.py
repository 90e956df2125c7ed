"""The video project state machine: which status may follow which."""

from __future__ import annotations

from enum import StrEnum

from clipgate.errors import InvalidTransition


class Status(StrEnum):
    """Where a video project is in the review gate."""

    QUEUED = "queued"
    GENERATING_VIDEO = "generating_video"
    VIDEO_READY = "video_ready"
    VIDEO_APPROVED = "video_approved"
    VIDEO_ERROR = "video_error"
    GENERATING_AUDIO = "generating_audio"
    AUDIO_READY = "audio_ready"

    @property
    def label(self) -> str:
        """The name Notion shows."""
        return NOTION_LABELS[self]


ALLOWED: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.QUEUED, Status.GENERATING_VIDEO),
        (Status.GENERATING_VIDEO, Status.VIDEO_READY),
        (Status.VIDEO_READY, Status.VIDEO_APPROVED),
        (Status.VIDEO_READY, Status.VIDEO_ERROR),
        (Status.VIDEO_ERROR, Status.QUEUED),
        (Status.VIDEO_APPROVED, Status.GENERATING_AUDIO),
        (Status.GENERATING_AUDIO, Status.AUDIO_READY),
    }
)

NOTION_LABELS: dict[Status, str] = {
    Status.QUEUED: "Queued",
    Status.GENERATING_VIDEO: "Generating Video",
    Status.VIDEO_READY: "Video Ready",
    Status.VIDEO_APPROVED: "Video Approved",
    Status.VIDEO_ERROR: "Video Error",
    Status.GENERATING_AUDIO: "Generating Audio",
    Status.AUDIO_READY: "Audio Ready",
}

# The seed spells "Video Ready" both ways; both must be read.
_LABEL_ALIASES = {"videos ready": Status.VIDEO_READY}


def check_transition(current: Status, requested: Status) -> None:
    """Raise InvalidTransition, naming both states, unless the move is allowed."""
    if (current, requested) not in ALLOWED:
        raise InvalidTransition(current.value, requested.value)


def status_from_label(label: str) -> Status:
    """The status a Notion label names ("Video Ready", "Videos Ready", ...)."""
    wanted = label.strip().lower()
    for status, name in NOTION_LABELS.items():
        if name.lower() == wanted:
            return status
    if wanted in _LABEL_ALIASES:
        return _LABEL_ALIASES[wanted]
    raise ValueError(
        f"{label!r} is not a clipgate status; expected one of {list(NOTION_LABELS.values())}"
    )
