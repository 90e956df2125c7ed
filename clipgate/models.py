"""The plain data the gate passes around: projects, clips, clip keys, review decisions."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict
from sqlmodel import SQLModel

from clipgate.clip_count import CLIP_COUNT as CLIP_COUNT

ClipNumber = Annotated[int, Field(ge=1, le=CLIP_COUNT, description="A clip number, 1-18")]

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _check_slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-100 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, because it becomes part of file names"
        )
    return value


class ClipSpec(BaseModel):
    """What one clip is made from."""

    model_config = ConfigDict(frozen=True)

    number: ClipNumber
    composite_image: Path = Field(description="The still image the clip is animated from")
    motion_prompt: str = Field(min_length=1, description="How the still should move")
    narration: str = Field(default="", description="What the narrator says over this clip")


class VideoProject(BaseModel):
    """A video project: one channel's video of 18 clips (the seed's "task")."""

    model_config = ConfigDict(frozen=True)

    project_id: str = Field(description="Stable id of the project, used in every clip key")
    channel: str = Field(description="The channel the video is made for")
    clips: list[ClipSpec] = Field(min_length=CLIP_COUNT, max_length=CLIP_COUNT)
    notion_page_id: str = Field(
        default="", description="The project's page in the Notion Tasks database, if any"
    )

    @field_validator("project_id")
    @classmethod
    def _project_id_is_slug(cls, value: str) -> str:
        return _check_slug(value, "project_id")

    @field_validator("channel")
    @classmethod
    def _channel_is_slug(cls, value: str) -> str:
        return _check_slug(value, "channel")

    @model_validator(mode="after")
    def _clips_are_one_to_eighteen(self) -> VideoProject:
        numbers = sorted(clip.number for clip in self.clips)
        if numbers != list(range(1, CLIP_COUNT + 1)):
            raise ValueError(
                f"a project needs exactly one clip numbered each of 1-{CLIP_COUNT}; got {numbers}"
            )
        return self

    def clip(self, number: int) -> ClipSpec:
        """The spec of clip `number`."""
        return next(clip for clip in self.clips if clip.number == number)


class ClipKey(BaseModel):
    """Names one generation of one clip: its cache entry, storage object and provider task."""

    model_config = ConfigDict(frozen=True)

    project_id: str
    channel: str
    number: ClipNumber
    attempt: int = Field(ge=1)

    @property
    def object_key(self) -> str:
        """Where the clip is stored: never overwritten, one object per attempt."""
        return f"{self.channel}/{self.project_id}/clip-{self.number:02d}/attempt-{self.attempt}.mp4"

    @property
    def thumbnail_key(self) -> str:
        """Where the clip's first-frame thumbnail is stored, beside the clip."""
        return self.object_key.removesuffix(".mp4") + ".jpg"

    @property
    def proxy_key(self) -> str:
        """Where the clip's small preview proxy (about 480p, faststart) is stored, beside it."""
        return self.object_key.removesuffix(".mp4") + ".proxy.mp4"

    @property
    def strip_key(self) -> str:
        """Where the clip's motion strip (frames across the clip, tiled) is stored, beside it."""
        return self.object_key.removesuffix(".mp4") + ".strip.jpg"

    @property
    def token(self) -> str:
        """A compact unique string for cache keys and provider task ids."""
        return f"{self.project_id}.clip-{self.number:02d}.attempt-{self.attempt}"


class StoredClip(SQLModel):
    """One made clip as every part of the gate sees it: which attempt, where, how it plays.

    The per-clip cached result (`ProducedClip`), the store's current clip (`ClipRow`) and
    the project summary are built from these fields; nothing copies them one by one.
    """

    number: int
    attempt: int
    object_key: str
    location: str = Field(description="Where the clip is kept: a local path or an object URL")
    url: str = Field(description="Where a reviewer's browser can fetch the clip")
    sha256: str
    size_bytes: int
    duration_s: float
    faststart: bool
    thumbnail_url: str = ""

    def stored_fields(self) -> dict[str, Any]:
        """This clip's `StoredClip` fields, to build another view of it."""
        return self.model_dump(include=set(StoredClip.model_fields))


class ClipNote(BaseModel):
    """A reviewer's note on one clip."""

    clip: ClipNumber
    note: str = Field(default="", max_length=2000)


# The Prefect server checks resume input against the JSON schema only, so the rule
# "at least one clip when flagging, none when approving" lives in the schema too.
_FLAG_NEEDS_CLIPS: JsonDict = {
    "if": {"properties": {"decision": {"const": "flag"}}},
    "then": {"required": ["clips"], "properties": {"clips": {"minItems": 1}}},
    "else": {"properties": {"clips": {"maxItems": 0}}},
}


class Decision(StrEnum):
    """What a reviewer decided about a round."""

    APPROVE = "approve"
    FLAG = "flag"


class ReviewDecision(BaseModel):
    """How one review round ended: approve everything, or flag clips to make again."""

    model_config = ConfigDict(json_schema_extra=_FLAG_NEEDS_CLIPS)

    decision: Decision = Field(
        description="approve: go on to narration. flag: make the listed clips again."
    )
    clips: list[ClipNumber] = Field(
        default_factory=list,
        description="Clips to make again (1-18). At least one when flagging; empty when approving.",
    )
    notes: list[ClipNote] = Field(default_factory=list, description="Optional note per clip")
    reviewer: str = Field(default="", max_length=200, description="Who reviewed, if known")

    @field_validator("clips")
    @classmethod
    def _sorted_without_duplicates(cls, clips: list[int]) -> list[int]:
        return sorted(set(clips))

    @model_validator(mode="after")
    def _flag_names_clips(self) -> ReviewDecision:
        if self.decision == Decision.FLAG and not self.clips:
            raise ValueError("flagging needs at least one clip number (1-18)")
        if self.decision == Decision.APPROVE and self.clips:
            raise ValueError("approving flags no clips; use decision 'flag' to name clips")
        return self

    @property
    def approved(self) -> bool:
        return self.decision == Decision.APPROVE


class AnswerSource(StrEnum):
    """Where a review answer came from; every surface answers through the same path."""

    PREFECT_FORM = "prefect-form"
    CLI = "cli"
    NOTION_POLL = "notion-poll"
    WEBHOOK = "webhook"
    ROOM = "room"
    DEMO = "demo"
