"""The one place that turns settings into the generator, storage and store a run uses."""

from __future__ import annotations

from functools import cache

from clipgate.errors import ConfigurationError
from clipgate.generators import ClipGenerator
from clipgate.generators.kling import KlingGenerator
from clipgate.generators.local import LocalMotionGenerator
from clipgate.settings import Settings
from clipgate.storage import ClipStorage
from clipgate.storage.local import LocalStorage
from clipgate.storage.r2 import R2Config, R2Storage, r2_storage
from clipgate.store import Store, open_store, sqlite_file


def build_generator(settings: Settings) -> ClipGenerator:
    """The generator the settings choose."""
    if settings.generator == "kling":
        if settings.kling is None:
            raise ConfigurationError(
                "CLIPGATE_GENERATOR is kling, but no Kling account is configured: set "
                "CLIPGATE_KLING_BLOCK to a saved KlingAccount block, or set "
                "CLIPGATE_KLING__ACCESS_KEY and CLIPGATE_KLING__SECRET_KEY"
            )
        return KlingGenerator(settings.kling)
    return LocalMotionGenerator(
        seconds=settings.clip_seconds,
        width=settings.clip_width,
        height=settings.clip_height,
        fps=settings.clip_fps,
    )


def build_storage(settings: Settings, channel: str) -> ClipStorage:
    """Where `channel` keeps its clips."""
    if settings.storage_for(channel) == "r2":
        if settings.r2 is None:
            raise ConfigurationError(
                f"channel {channel!r} stores clips in R2, but no R2 bucket is configured: "
                "set CLIPGATE_R2_BLOCK to the name of an R2Bucket block, or set "
                "CLIPGATE_R2__ACCOUNT_ID, CLIPGATE_R2__ACCESS_KEY_ID, "
                "CLIPGATE_R2__SECRET_ACCESS_KEY, CLIPGATE_R2__BUCKET and "
                "CLIPGATE_R2__PUBLIC_BASE_URL"
            )
        return _checked_r2(settings.r2)
    # "notion" keeps the file here too: Notion gets it as an upload when the row is made.
    return LocalStorage(root=settings.clips_dir, name=settings.storage_for(channel))


@cache
def _checked_r2(config: R2Config) -> R2Storage:
    # Checking the bucket costs a request: once per bucket per process, not once per clip.
    return r2_storage(config)


def build_store(settings: Settings) -> Store:
    """The database of project state and audit trail."""
    return open_store(settings.resolved_database_url)


def existing_store(settings: Settings) -> Store:
    """The store, for commands that only read or answer: never makes an empty database."""
    database = sqlite_file(settings.resolved_database_url)
    if database is not None and not database.is_file():
        raise ConfigurationError(
            f"no clipgate database at {database} (CLIPGATE_HOME={settings.home}): set "
            "CLIPGATE_HOME (or CLIPGATE_DATABASE_URL) to where the gate ran; the demo "
            "prints the exact command"
        )
    return build_store(settings)


def store_description(settings: Settings) -> str:
    """Which database a command looked in, for messages about unknown projects."""
    database = sqlite_file(settings.resolved_database_url)
    if database is not None:
        return f"the SQLite database {database}"
    return "the database at CLIPGATE_DATABASE_URL"
