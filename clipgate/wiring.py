"""The one place that turns settings into the generator, storage and store a run uses."""

from __future__ import annotations

import atexit
import shlex
import threading
from functools import cache
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine, select

from clipgate.errors import ConfigurationError, InputError
from clipgate.generators import ClipGenerator
from clipgate.generators.kling import KlingConfig, KlingGenerator
from clipgate.generators.local import LocalMotionGenerator
from clipgate.settings import Settings
from clipgate.states import Status
from clipgate.storage import ClipStorage
from clipgate.storage.local import LocalStorage
from clipgate.storage.r2 import R2Config, R2Storage, r2_storage
from clipgate.store import ProjectRow, Store, open_store, sqlite_file

_kling_generators_lock = threading.Lock()
_kling_generators: dict[KlingConfig, KlingGenerator] = {}


def build_generator(settings: Settings) -> ClipGenerator:
    """The generator the settings choose; a Kling one is built once per config per process."""
    if settings.generator == "kling":
        if settings.kling is None:
            raise ConfigurationError(
                "CLIPGATE_GENERATOR is kling, but no Kling account is configured: set "
                "CLIPGATE_KLING_BLOCK to a saved KlingAccount block, or set "
                "CLIPGATE_KLING__ACCESS_KEY and CLIPGATE_KLING__SECRET_KEY"
            )
        return _shared_kling_generator(settings.kling)
    return LocalMotionGenerator(
        seconds=settings.clip_seconds,
        width=settings.clip_width,
        height=settings.clip_height,
        fps=settings.clip_fps,
    )


def _shared_kling_generator(config: KlingConfig) -> KlingGenerator:
    # Every clip asks for its generator, several at a time: they share one connection
    # pool, closed when the process exits.
    with _kling_generators_lock:
        generator = _kling_generators.get(config)
        if generator is None:
            generator = _kling_generators[config] = KlingGenerator(config)
            atexit.register(generator.close)
        return generator


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
    """The store, for commands that only read or answer: never makes a database.

    One an older clipgate made is upgraded, as by any other command: this code cannot
    read the older schema, and an upgrade only adds.
    """
    database = sqlite_file(settings.resolved_database_url)
    if database is not None and not database.is_file():
        raise ConfigurationError(
            f"no clipgate database at {database} (CLIPGATE_HOME={settings.home}): set "
            "CLIPGATE_HOME (or CLIPGATE_DATABASE_URL) to where the gate ran; "
            + _demo_hint(settings, None)
        )
    return open_store(settings.resolved_database_url, create=False)


def store_description(settings: Settings) -> str:
    """Which database a command looked in, for messages about unknown projects."""
    database = sqlite_file(settings.resolved_database_url)
    if database is not None:
        return f"the SQLite database {database}"
    return "the database at CLIPGATE_DATABASE_URL"


def unknown_project(settings: Settings, project_id: str) -> InputError:
    """The error for a project the store does not know: where it looked, where to look."""
    return InputError(
        f"no video project {project_id!r} in {store_description(settings)}; set "
        "CLIPGATE_HOME (or CLIPGATE_DATABASE_URL) to where the gate ran; "
        + _demo_hint(settings, project_id)
    )


def store_with_project(settings: Settings, project_id: str) -> Store:
    """The existing store, for a command about one project; `unknown_project` if it has none."""
    store = existing_store(settings)
    if store.project(project_id) is None:
        raise unknown_project(settings, project_id)
    return store


# `clipgate demo` keeps its database in WORKDIR/data, by default ./clipgate-demo/data.
DEMO_HOME = Path("clipgate-demo", "data")


def _demo_hint(settings: Settings, project_id: str | None) -> str:
    # The demo's database is the one a person looks for most often: when it is in its
    # usual place, say the exact command that reads it.
    demo_database = (DEMO_HOME / "clipgate.db").resolve()
    looked_in = sqlite_file(settings.resolved_database_url)
    if settings.database_url or looked_in == demo_database or not demo_database.is_file():
        return "the demo prints the exact commands for its own folder"
    home = f"CLIPGATE_HOME={shlex.quote(str(demo_database.parent))}"
    if project_id is None:
        return (
            f"the demo's database is {demo_database}: `{home} clipgate status` lists its projects"
        )
    # Read only: wording an error must not upgrade or otherwise touch another database.
    read_only = create_engine(f"sqlite:///file:{demo_database}?mode=ro&uri=true")
    try:
        with Session(read_only) as demo:
            found = demo.exec(
                select(ProjectRow.status).where(ProjectRow.project_id == project_id)
            ).first()
    except SQLAlchemyError:
        return "the demo prints the exact commands for its own folder"
    finally:
        read_only.dispose()
    if found is None:
        return f"it is not in the demo's database {demo_database} either"
    waiting = found == Status.VIDEO_READY
    command = f"review {project_id} --approve" if waiting else f"status {project_id}"
    return f"it is in the demo's database {demo_database}: `{home} clipgate {command}`"
