"""Typed settings from the environment (prefix CLIPGATE_), checked when loaded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from clipgate.errors import ConfigurationError
from clipgate.generators.kling import KlingConfig
from clipgate.notion.gateway import NotionConfig
from clipgate.storage.r2 import R2Config

StorageBackend = Literal["local", "r2", "notion"]


class Settings(BaseSettings):
    """Everything clipgate reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="CLIPGATE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(
        default=Path(".clipgate"),
        description="Folder for the database, clips, cached results and narration",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; empty means a SQLite file in home",
    )
    generator: Literal["local", "kling"] = Field(
        default="local", description="local: ffmpeg motion from the still; kling: Kling AI"
    )
    kling: KlingConfig | None = Field(
        default=None, description="The Kling account (CLIPGATE_KLING__ACCESS_KEY, ...)"
    )
    kling_block: str = Field(
        default="", description="Name of the KlingAccount block to load Kling from"
    )
    regenerate_on_error: list[str] = Field(
        default_factory=list,
        description='Channels whose flagged clips are remade as soon as Notion says "Video Error"'
        ', without waiting for "Queued" (JSON list)',
    )
    kling_concurrency: int = Field(
        default=5, ge=1, le=100, description="Clips in flight at Kling across all runs"
    )
    storage: StorageBackend = Field(
        default="local", description="Where clips are stored unless channel_storage says else"
    )
    channel_storage: dict[str, StorageBackend] = Field(
        default_factory=dict,
        description='Per-channel storage as JSON, e.g. {"history": "r2"}',
    )
    r2: R2Config | None = Field(
        default=None, description="The R2 bucket (CLIPGATE_R2__ACCOUNT_ID, ...), if not a block"
    )
    r2_block: str = Field(
        default="", description="Name of the R2Bucket block to load the R2 bucket from"
    )
    results_block: str = Field(
        default="",
        description="Name of the saved S3Bucket block (prefect-aws) that holds the per-clip "
        "cache, results and cache records, for every machine; empty means the folder "
        "results in home",
    )
    results_r2: R2Config | None = Field(
        default=None,
        description="The bucket `clipgate setup` saves as the results block "
        "(CLIPGATE_RESULTS_R2__ACCOUNT_ID, __ACCESS_KEY_ID, __SECRET_ACCESS_KEY, __BUCKET, "
        "__ENDPOINT_URL)",
    )
    redis_url: str = Field(
        default="",
        description="Redis whose locks let one run at a time make a clip, across machines "
        "(redis://127.0.0.1:6379/0); empty means same-clip work is not serialized",
    )
    clip_lock_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A clip's lock lapses this long after its holder stops renewing it "
        "(a crashed worker); a live holder renews it every third of that",
    )
    notion: NotionConfig | None = Field(
        default=None, description="The Notion workspace (CLIPGATE_NOTION__TOKEN, ...)"
    )
    notion_webhook_token: SecretStr | None = Field(
        default=None, description="The verification token Notion signs webhook deliveries with"
    )
    notion_block: str = Field(
        default="", description="Name of the NotionWorkspace block to load Notion from"
    )
    clip_seconds: float = Field(default=10.0, gt=0, le=60)
    clip_width: int = Field(default=1280, ge=16, le=3840)
    clip_height: int = Field(default=720, ge=16, le=2160)
    clip_fps: int = Field(default=25, ge=1, le=60)
    review_timeout_s: int = Field(default=24 * 3600, ge=1)
    review_poll_interval_s: int = Field(default=10, ge=1)
    room_host: str = Field(
        default="127.0.0.1", description="Address the review room listens on (clipgate room)"
    )
    room_port: int = Field(default=8780, ge=1, le=65535, description="Port of the review room")
    room_public_url: str = Field(
        default="",
        description="Base URL reviewers reach the review room at (https://review.example.com); "
        "empty means http://ROOM_HOST:ROOM_PORT",
    )
    room_token: SecretStr | None = Field(
        default=None,
        description="Token the review room asks for; required when it listens off loopback",
    )

    def storage_for(self, channel: str) -> StorageBackend:
        """The storage backend `channel` uses."""
        return self.channel_storage.get(channel, self.storage)

    @property
    def room_url(self) -> str:
        """Where reviewers open the review room, without a trailing slash."""
        return (self.room_public_url or f"http://{self.room_host}:{self.room_port}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'clipgate.db').resolve()}"

    @property
    def clips_dir(self) -> Path:
        """Local clip storage: one file per clip key, never overwritten."""
        return self.home / "clips"

    @property
    def work_dir(self) -> Path:
        """Scratch space for clips being made."""
        return self.home / "work"

    @property
    def results_dir(self) -> Path:
        """Persisted Prefect task results, the per-clip cache."""
        return self.home / "results"

    @property
    def narration_dir(self) -> Path:
        return self.home / "narration"


def load_settings() -> Settings:
    """Read settings from the environment, or stop with a message naming the bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"CLIPGATE_{'__'.join(str(part) for part in issue['loc']).upper()}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigurationError(f"bad clipgate settings: {problems}") from None
    except SettingsError as error:
        # pydantic-settings says 'error parsing value for field "channel_storage" from
        # source ...' when a JSON value does not parse.
        field = re.search(r'field "(\w+)"', str(error))
        variable = f"CLIPGATE_{field.group(1).upper()}" if field else "a CLIPGATE_ variable"
        raise ConfigurationError(
            f"bad clipgate settings: {variable} is not valid JSON ({error.__cause__}); "
            'write it as JSON, e.g. CLIPGATE_CHANNEL_STORAGE=\'{"history": "r2"}\''
        ) from None
