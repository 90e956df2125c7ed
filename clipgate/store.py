"""The gate's state and audit trail in SQL (SQLModel): SQLite by default, PostgreSQL by URL.

Everything that must survive a flow run lives here: project status, review rounds,
which attempt each clip is at, every generation attempt and every review decision.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlmodel import AutoString, Field, Session, SQLModel, col, create_engine, select

from clipgate.errors import ClipgateError, ConfigurationError
from clipgate.migrations import upgrade_to_head
from clipgate.models import AnswerSource, Decision, StoredClip
from clipgate.states import Status


def utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class ProjectRow(SQLModel, table=True):
    """One video project and where it is in the gate."""

    __tablename__ = "video_projects"

    project_id: str = Field(primary_key=True)
    channel: str
    status: Status = Field(sa_type=AutoString)
    review_round: int = 1
    error_log: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    # The clips the last decision flagged; the column keeps its first name.
    flagged_clip_numbers: list[int] = Field(
        default_factory=list, sa_column=Column("failed_clip_numbers", JSON)
    )
    step_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    review_started_at: datetime | None = _timestamp()
    review_completed_at: datetime | None = _timestamp()
    flow_run_id: str | None = None
    notion_page_id: str = Field(default="", index=True)
    pending_review: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime | None = _timestamp()
    updated_at: datetime | None = _timestamp()


class ClipRow(StoredClip, table=True):
    """The current, stored version of one clip of a project."""

    __tablename__ = "clips"
    # Project first, as the key always was: a project's clips are one range of it. The
    # fields StoredClip brings come first, which would otherwise put `number` first.
    __table_args__ = (PrimaryKeyConstraint("project_id", "number"),)

    project_id: str = Field(primary_key=True)
    number: int = Field(primary_key=True)
    # The column keeps the name it had before the field joined StoredClip.
    thumbnail_url: str = Field(default="", sa_column=Column("thumbnail", String, nullable=False))
    updated_at: datetime | None = _timestamp()


class GenerationAttemptRow(SQLModel, table=True):
    """One run of the video generator for one clip key."""

    __tablename__ = "generation_attempts"

    id: int | None = Field(default=None, primary_key=True)
    clip_key: str = Field(unique=True)
    project_id: str = Field(index=True)
    clip_number: int
    attempt: int
    generator: str
    external_task_id: str = ""
    # How long the generator took; the column keeps its first name.
    generation_seconds: float = Field(sa_column=Column("seconds", Float, nullable=False))
    file: str
    sha256: str
    cost_usd: float = 0.0
    created_at: datetime | None = _timestamp()
    # The finished clip as the flow returns it; a rerun that finds it here makes nothing.
    produced: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Until when the generator's own copy can be fetched again (Kling clears it after 30
    # days); None when the generator keeps nothing.
    provider_url_expires_at: datetime | None = _timestamp()


class ReviewEventRow(SQLModel, table=True):
    """The decision that ended one review round: the audit trail."""

    __tablename__ = "review_events"
    __table_args__ = (UniqueConstraint("project_id", "review_round"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(index=True)
    review_round: int
    decision: Decision = Field(sa_type=AutoString)
    clips: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    notes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    reviewer: str = ""
    source: AnswerSource = Field(sa_type=AutoString)
    review_started_at: datetime | None = _timestamp()
    decided_at: datetime | None = _timestamp()
    review_seconds: float | None = None


class PollCursorRow(SQLModel, table=True):
    """Where a poll of a review surface got to: the next one reads changes since then."""

    __tablename__ = "poll_cursors"

    name: str = Field(primary_key=True)
    since: datetime | None = _timestamp()


class ProjectSpecRow(SQLModel, table=True):
    """The manifest a project was started with, so it can be finished after a crash."""

    __tablename__ = "project_specs"

    project_id: str = Field(primary_key=True)
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class RunHeartbeatRow(SQLModel, table=True):
    """Proof of life of the process running a project's flow, refreshed while it runs."""

    __tablename__ = "run_heartbeats"

    project_id: str = Field(primary_key=True)
    flow_run_id: str
    host: str
    pid: int
    beat_at: datetime | None = _timestamp()
    stopped: bool = False


class WebhookEventRow(SQLModel, table=True):
    """A webhook delivery already handled: Notion redelivers, and attackers replay."""

    __tablename__ = "webhook_events"

    event_id: str = Field(primary_key=True)
    received_at: datetime | None = _timestamp()


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; every timestamp we write is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Store:
    """A handle on the database; sessions are short and opened per operation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def project(self, project_id: str) -> ProjectRow | None:
        with self.session() as session:
            return session.get(ProjectRow, project_id)

    def project_by_notion_page(self, page_id: str) -> ProjectRow | None:
        with self.session() as session:
            query = select(ProjectRow).where(ProjectRow.notion_page_id == page_id)
            return session.exec(query).first()

    def set_pending_review(self, project_id: str, pending: dict[str, Any]) -> None:
        """Keep flags a reviewer set in Notion until they ask for the remake (Queued)."""
        with self.session() as session:
            row = session.get(ProjectRow, project_id, with_for_update=True)
            if row is not None:
                row.pending_review = pending
                session.add(row)
                session.commit()

    def save_project_spec(self, project_id: str, spec: dict[str, Any]) -> None:
        """Keep the manifest a project runs with; the newest start wins."""
        with self.session() as session:
            session.merge(ProjectSpecRow(project_id=project_id, spec=spec))
            session.commit()

    def project_spec(self, project_id: str) -> dict[str, Any] | None:
        with self.session() as session:
            row = session.get(ProjectSpecRow, project_id)
            return row.spec if row else None

    def heartbeat(self, project_id: str) -> RunHeartbeatRow | None:
        with self.session() as session:
            return session.get(RunHeartbeatRow, project_id)

    def beat(self, beat: RunHeartbeatRow) -> None:
        with self.session() as session:
            session.merge(beat)
            session.commit()

    def remember_webhook_event(self, event_id: str) -> bool:
        """Note a delivery; False if it was seen before."""
        with self.session() as session:
            if session.get(WebhookEventRow, event_id) is not None:
                return False
            session.add(WebhookEventRow(event_id=event_id, received_at=utc_now()))
            session.commit()
            return True

    def forget_webhook_event(self, event_id: str) -> None:
        """Unnote a delivery that failed, so that Notion's retry of it is handled."""
        with self.session() as session:
            row = session.get(WebhookEventRow, event_id)
            if row is not None:
                session.delete(row)
                session.commit()

    def poll_cursor(self, name: str) -> datetime | None:
        with self.session() as session:
            row = session.get(PollCursorRow, name)
            return as_utc(row.since) if row else None

    def set_poll_cursor(self, name: str, since: datetime) -> None:
        with self.session() as session:
            session.merge(PollCursorRow(name=name, since=since))
            session.commit()

    def clips(self, project_id: str) -> list[ClipRow]:
        with self.session() as session:
            query = select(ClipRow).where(ClipRow.project_id == project_id)
            return list(session.exec(query.order_by(col(ClipRow.number))))

    def review_events(self, project_id: str) -> list[ReviewEventRow]:
        with self.session() as session:
            query = select(ReviewEventRow).where(ReviewEventRow.project_id == project_id)
            return list(session.exec(query.order_by(col(ReviewEventRow.review_round))))

    def generation_attempts(self, project_id: str) -> list[GenerationAttemptRow]:
        with self.session() as session:
            query = select(GenerationAttemptRow).where(
                GenerationAttemptRow.project_id == project_id
            )
            return list(session.exec(query.order_by(col(GenerationAttemptRow.id))))

    def generation_attempt(self, clip_key: str) -> GenerationAttemptRow | None:
        with self.session() as session:
            query = select(GenerationAttemptRow).where(GenerationAttemptRow.clip_key == clip_key)
            return session.exec(query).first()

    def record_generation(self, attempt: GenerationAttemptRow) -> None:
        """Record a generator run; a rerun of the same clip key replaces its record."""
        with self.session() as session:
            existing = session.exec(
                select(GenerationAttemptRow).where(
                    GenerationAttemptRow.clip_key == attempt.clip_key
                )
            ).first()
            if existing is not None:
                attempt.id = existing.id
                session.merge(attempt)
            else:
                session.add(attempt)
            session.commit()


def _normalised_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, or None for another database or an in-memory one."""
    url = _normalised_url(url)
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def open_store(url: str, *, create: bool = True) -> Store:
    """The store at `url`, upgraded to this clipgate's schema; one engine per URL per process.

    A database made before migrations is upgraded in place. With `create` false, a
    database without clipgate's tables is refused instead of made (for commands that
    only read or answer).
    """
    url = _normalised_url(url)
    if not url.startswith(_SUPPORTED):
        raise ConfigurationError(
            f"CLIPGATE_DATABASE_URL: {url.split('://', 1)[0]!r} databases are not supported; "
            "use sqlite:///path/to/clipgate.db or postgresql://user@host:5432/db"
        )
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = Store(_upgraded_engine(url, create))
        return store


_SUPPORTED = ("sqlite:", "postgresql+psycopg:")


def _upgraded_engine(url: str, create: bool) -> Engine:
    database = sqlite_file(url)
    engine: Engine | None = None
    try:
        if url.startswith("sqlite"):
            if database is not None and create:
                database.parent.mkdir(parents=True, exist_ok=True)
            elif database is not None and not database.is_file():
                raise ConfigurationError(f"no clipgate database at {database}")
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        upgrade_to_head(engine, create=create)
    except Exception as error:
        if engine is not None:
            engine.dispose()
        if isinstance(error, ClipgateError):
            raise
        shown = make_url(url).render_as_string(hide_password=True)
        raise ConfigurationError(
            f"cannot open the clipgate database ({shown}): {error}. "
            "Check CLIPGATE_DATABASE_URL and that the database server is running."
        ) from None
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets the demo read progress while flow threads write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
