"""The store's migrations on SQLite and on the PostgreSQL server at 127.0.0.1:5432.

Databases made before migrations are rebuilt here from the tables `create_all` made at each
commit that changed them (`git log -p clipgate/store.py`), with rows in every table.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from clipgate.cli import main
from clipgate.errors import ConfigurationError
from clipgate.migrations import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    migration_lock,
    upgrade_to_head,
)
from clipgate.settings import Settings
from clipgate.store import Store, as_utc, open_store
from clipgate.wiring import existing_store

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# The commits whose models changed the tables, oldest first.
FIRST = "4c867db"  # video_projects, clips, generation_attempts, review_events
NOTION_POLL = "636d859"  # video_projects.notion_page_id (indexed), .pending_review; poll_cursors
WEBHOOKS = "38cfe3a"  # webhook_events
RECOVERY = "2fbb952"  # generation_attempts.produced, .provider_url_expires_at; project_specs,
# run_heartbeats; `_add_missing_columns`
COMMITS = [FIRST, NOTION_POLL, WEBHOOKS, RECOVERY]

VERSIONS = sa.table(VERSION_TABLE, sa.column("version_num"))
MOMENT = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def _legacy_schema(commit: str) -> sa.MetaData:
    """The tables `create_all` made at `commit`, column for column as its models declared."""
    schema = sa.MetaData()

    def since(earliest: str) -> bool:
        return COMMITS.index(commit) >= COMMITS.index(earliest)

    def stamp(name: str) -> sa.Column[datetime]:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)

    projects: list[sa.Column[Any]] = [
        sa.Column("project_id", sa.String(), primary_key=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("error_log", sa.JSON()),
        sa.Column("failed_clip_numbers", sa.JSON()),
        sa.Column("step_metadata", sa.JSON()),
        stamp("review_started_at"),
        stamp("review_completed_at"),
        sa.Column("flow_run_id", sa.String(), nullable=True),
    ]
    if since(NOTION_POLL):
        projects += [
            sa.Column("notion_page_id", sa.String(), nullable=False, index=True),
            sa.Column("pending_review", sa.JSON()),
        ]
    sa.Table("video_projects", schema, *projects, stamp("created_at"), stamp("updated_at"))
    sa.Table(
        "clips",
        schema,
        sa.Column("project_id", sa.String(), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("faststart", sa.Boolean(), nullable=False),
        sa.Column("thumbnail", sa.String(), nullable=False),
        stamp("updated_at"),
    )
    attempts: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("clip_key", sa.String(), nullable=False, unique=True),
        sa.Column("project_id", sa.String(), nullable=False, index=True),
        sa.Column("clip_number", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("generator", sa.String(), nullable=False),
        sa.Column("external_task_id", sa.String(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        stamp("created_at"),
    ]
    if since(RECOVERY):
        attempts += [sa.Column("produced", sa.JSON()), stamp("provider_url_expires_at")]
    sa.Table("generation_attempts", schema, *attempts)
    sa.Table(
        "review_events",
        schema,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.String(), nullable=False, index=True),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("clips", sa.JSON()),
        sa.Column("notes", sa.JSON()),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        stamp("review_started_at"),
        stamp("decided_at"),
        sa.Column("review_seconds", sa.Float(), nullable=True),
        sa.UniqueConstraint("project_id", "review_round"),
    )
    if since(NOTION_POLL):
        sa.Table(
            "poll_cursors",
            schema,
            sa.Column("name", sa.String(), primary_key=True),
            stamp("since"),
        )
    if since(WEBHOOKS):
        sa.Table(
            "webhook_events",
            schema,
            sa.Column("event_id", sa.String(), primary_key=True),
            stamp("received_at"),
        )
    if since(RECOVERY):
        sa.Table(
            "project_specs",
            schema,
            sa.Column("project_id", sa.String(), primary_key=True),
            sa.Column("spec", sa.JSON()),
        )
        sa.Table(
            "run_heartbeats",
            schema,
            sa.Column("project_id", sa.String(), primary_key=True),
            sa.Column("flow_run_id", sa.String(), nullable=False),
            sa.Column("host", sa.String(), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            stamp("beat_at"),
            sa.Column("stopped", sa.Boolean(), nullable=False),
        )
    return schema


# A row for every table at RECOVERY; an older database gets the tables and columns it had.
ROWS: dict[str, list[dict[str, Any]]] = {
    "video_projects": [
        {
            "project_id": "p-1",
            "channel": "history",
            "status": "video_ready",
            "review_round": 2,
            "error_log": [{"at": "2026-11-20T10:00:00Z", "message": "Regenerate: clips 5, 12"}],
            "failed_clip_numbers": [5, 12],
            "step_metadata": {"generator": "local"},
            "review_started_at": MOMENT,
            "review_completed_at": None,
            "flow_run_id": "run-1",
            "notion_page_id": "page-1",
            "pending_review": {"clips": [5]},
            "created_at": MOMENT,
            "updated_at": MOMENT,
        },
        {
            "project_id": "p-2",
            "channel": "science",
            "status": "queued",
            "review_round": 1,
            "error_log": [],
            "failed_clip_numbers": [],
            "step_metadata": {},
            "review_started_at": None,
            "review_completed_at": None,
            "flow_run_id": None,
            "notion_page_id": "",
            "pending_review": {},
            "created_at": MOMENT,
            "updated_at": None,
        },
    ],
    "clips": [
        {
            "project_id": "p-1",
            "number": number,
            "attempt": 2 if number == 5 else 1,
            "object_key": f"history/p-1/clip-{number:02d}/attempt-1.mp4",
            "location": f"/clips/history/p-1/clip-{number:02d}/attempt-1.mp4",
            "url": f"file:///clips/history/p-1/clip-{number:02d}/attempt-1.mp4",
            "sha256": f"{number:064x}",
            "size_bytes": 1_000_000 + number,
            "duration_s": 10.0,
            "faststart": True,
            "thumbnail": f"file:///clips/history/p-1/clip-{number:02d}/attempt-1.jpg",
            "updated_at": MOMENT,
        }
        for number in (5, 6)
    ],
    "generation_attempts": [
        {
            "id": 1,
            "clip_key": "p-1/clip-05/attempt-1",
            "project_id": "p-1",
            "clip_number": 5,
            "attempt": 1,
            "generator": "kling",
            "external_task_id": "p-1-05-1",
            "seconds": 187.5,
            "file": "/work/p-1/clip-05.mp4",
            "sha256": "a" * 64,
            "cost_usd": 0.49,
            "created_at": MOMENT,
            "produced": {"number": 5, "attempt": 1},
            "provider_url_expires_at": MOMENT,
        }
    ],
    "review_events": [
        {
            "id": 1,
            "project_id": "p-1",
            "review_round": 1,
            "decision": "flag",
            "clips": [5, 12],
            "notes": [{"clip": 5, "note": "glitch at 0:03"}],
            "reviewer": "ana",
            "source": "cli",
            "review_started_at": MOMENT,
            "decided_at": MOMENT,
            "review_seconds": 42.5,
        }
    ],
    "poll_cursors": [{"name": "notion", "since": MOMENT}],
    "webhook_events": [{"event_id": "evt-1", "received_at": MOMENT}],
    "project_specs": [{"project_id": "p-1", "spec": {"channel": "history", "clips": 18}}],
    "run_heartbeats": [
        {
            "project_id": "p-1",
            "flow_run_id": "run-1",
            "host": "box",
            "pid": 4242,
            "beat_at": MOMENT,
            "stopped": False,
        }
    ],
}

# What a row written before its column existed reads there after the upgrade.
LATE_DEFAULTS: dict[tuple[str, str], Any] = {
    ("video_projects", "notion_page_id"): "",
    ("video_projects", "pending_review"): {},
    ("generation_attempts", "produced"): None,
    ("generation_attempts", "provider_url_expires_at"): None,
}


@dataclass
class Database:
    """One test's database: a fresh SQLite file or a fresh PostgreSQL schema."""

    kind: str
    url: str
    schema: str = ""
    opened: list[Store] = field(default_factory=list)

    def open(self, *, create: bool = True) -> Store:
        """The product's store on this database, closed when the test ends."""
        store = open_store(self.url, create=create)
        self.opened.append(store)
        return store

    @property
    def sqlite_path(self) -> Path:
        assert self.kind == "sqlite"
        return Path(sa.make_url(self.url).database or "")


def _sqlite_like_clipgate(engine: sa.Engine) -> sa.Engine:
    # Every clipgate before migrations put its SQLite files in WAL mode.
    def wal(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")

    sa.event.listen(engine, "connect", wal)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database no clipgate has touched: a SQLite file path, or an empty schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gate.db'}"
        made = Database("sqlite", url)
        yield made
        for store in made.opened:
            store.engine.dispose()
        return
    schema = f"clipgate_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    made = Database("postgresql", url, schema)
    try:
        yield made
    finally:
        for store in made.opened:
            store.engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _engine(database: Database) -> sa.Engine:
    """An engine of the test's own, outside the product's cache of stores."""
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    return _sqlite_like_clipgate(engine) if database.kind == "sqlite" else engine


def _open_as_at_recovery(engine: sa.Engine) -> None:
    """What opening an older database did at RECOVERY: create_all, `_add_missing_columns`."""
    schema = _legacy_schema(RECOVERY)
    schema.create_all(engine)
    present = sa.inspect(engine)
    for table in schema.sorted_tables:
        have = {column["name"] for column in present.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as connection:
                    connection.execute(
                        sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                    )


@dataclass
class Legacy:
    """How a database made before migrations came to be."""

    made_at: str
    opened_at_recovery: bool = False

    @property
    def name(self) -> str:
        then = "-then-opened-at-" + RECOVERY if self.opened_at_recovery else ""
        return f"made-at-{self.made_at}{then}"


LEGACIES = [
    Legacy(FIRST),
    Legacy(FIRST, opened_at_recovery=True),
    Legacy(NOTION_POLL),
    Legacy(WEBHOOKS),
    Legacy(RECOVERY),
]


def _make_legacy(database: Database, legacy: Legacy) -> dict[str, list[dict[str, Any]]]:
    """Build the old database with rows in every table it had; the rows as written."""
    engine = _engine(database)
    schema = _legacy_schema(legacy.made_at)
    schema.create_all(engine)
    written: dict[str, list[dict[str, Any]]] = {}
    with engine.begin() as connection:
        for table in schema.sorted_tables:
            rows = [
                {name: value for name, value in row.items() if name in table.columns}
                for row in ROWS[table.name]
            ]
            connection.execute(table.insert(), rows)
            written[table.name] = rows
    if legacy.opened_at_recovery:
        _open_as_at_recovery(engine)
    engine.dispose()
    return written


def _schema_differences(connection: sa.Connection) -> list[Any]:
    """How the database differs from the models: autogenerate's view, plus key order."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    differences: list[Any] = list(compare_metadata(context, SQLModel.metadata))
    reflected = sa.inspect(connection)
    for table in SQLModel.metadata.sorted_tables:
        if reflected.has_table(table.name):
            key = reflected.get_pk_constraint(table.name)["constrained_columns"]
            declared = [column.name for column in table.primary_key.columns]
            if key != declared:
                differences.append(("primary key order", table.name, key, declared))
    return differences


def _comparable(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def _rows_now(connection: sa.Connection, table_name: str) -> list[dict[str, Any]]:
    table = SQLModel.metadata.tables[table_name]
    query = sa.select(table).order_by(*table.primary_key.columns)
    return [
        {name: _comparable(value) for name, value in row._mapping.items()}
        for row in connection.execute(query)
    ]


def _assert_every_row_kept(database: Database, written: dict[str, list[dict[str, Any]]]) -> None:
    engine = _engine(database)
    with engine.connect() as connection:
        for table_name, rows in written.items():
            now = _rows_now(connection, table_name)
            assert len(now) == len(rows), table_name
            for before, after in zip(rows, now, strict=True):
                for name, value in before.items():
                    assert after[name] == _comparable(value), (table_name, name)
                for (late_table, late_column), default in LATE_DEFAULTS.items():
                    if late_table == table_name and late_column not in before:
                        assert after[late_column] == default, (table_name, late_column)
        for table_name in set(SQLModel.metadata.tables) - set(written):
            assert _rows_now(connection, table_name) == [], table_name
    engine.dispose()


def test_a_fresh_database_is_made_at_head_exactly_as_the_models_declare(
    database: Database,
) -> None:
    """A database nobody made yet gets the baseline, which is what the models declare."""
    store = database.open()
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert _schema_differences(connection) == []
        tables = set(sa.inspect(connection).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {VERSION_TABLE}


def test_the_schema_check_sees_a_model_change_without_a_migration(database: Database) -> None:
    """The comparison the tests rely on reports a column the models have and the database lacks."""
    store = database.open()
    with store.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE poll_cursors ADD COLUMN surplus VARCHAR"))
        differences = _schema_differences(connection)
    assert [difference[0] for difference in differences] == ["remove_column"]


@pytest.mark.parametrize("legacy", LEGACIES, ids=lambda legacy: legacy.name)
def test_a_database_made_before_migrations_is_upgraded_in_place(
    database: Database, legacy: Legacy
) -> None:
    """Every row an older clipgate wrote is still there and the schema is the models'."""
    written = _make_legacy(database, legacy)
    engine = _engine(database)
    with engine.connect() as connection:
        assert current_revision(connection) is None
        if legacy.made_at != RECOVERY:
            assert _schema_differences(connection) != []
    engine.dispose()

    store = database.open()

    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert _schema_differences(connection) == []
    _assert_every_row_kept(database, written)
    project = store.project("p-1")
    assert project is not None
    assert project.flagged_clip_numbers == [5, 12]
    assert [clip.thumbnail_url for clip in store.clips("p-1")] == [
        "file:///clips/history/p-1/clip-05/attempt-1.jpg",
        "file:///clips/history/p-1/clip-06/attempt-1.jpg",
    ]
    assert [attempt.generation_seconds for attempt in store.generation_attempts("p-1")] == [187.5]
    store.set_pending_review("p-1", {"clips": [6]})
    assert store.project("p-1") is not None
    assert store.project_by_notion_page(project.notion_page_id) is not None


def _opener(url: str) -> subprocess.Popen[str]:
    """A process that imports clipgate, says "ready", and on a line from us opens `url`."""
    script = f"{OPENER_IMPORTS}print('ready', flush=True)\nsys.stdin.readline()\n{OPEN_AND_SAY}"
    return subprocess.Popen(
        [sys.executable, "-c", script, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


OPENER_IMPORTS = (
    "import sys\n"
    "from clipgate.migrations import current_revision\n"
    "from clipgate.store import open_store\n"
)
# Opens the store at the URL in argv[-1] and prints the revision the database is at.
OPEN_AND_SAY = (
    "with open_store(sys.argv[-1]).engine.connect() as connection:\n"
    "    print(current_revision(connection))\n"
)


def _go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def _ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"


def _finished(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out


def test_processes_opening_an_old_database_at_once_upgrade_it_once(database: Database) -> None:
    """Four processes open one pre-migration database together: all work, one version row."""
    written = _make_legacy(database, Legacy(FIRST, opened_at_recovery=True))
    children = [_opener(database.url) for _ in range(4)]
    for child in children:
        _ready(child)
    for child in children:
        _go(child)
    for child in children:
        assert _finished(child).split() == [head_revision()]
    _assert_every_row_kept(database, written)
    engine = _engine(database)
    with engine.connect() as connection:
        versions = connection.execute(sa.select(VERSIONS.c.version_num)).scalars()
        assert list(versions) == [head_revision()]
        assert _schema_differences(connection) == []
    engine.dispose()


def test_a_process_waits_while_another_holds_the_migration_lock(database: Database) -> None:
    """While one process upgrades, another waits for it, then finds the database at head."""
    written = _make_legacy(database, Legacy(WEBHOOKS))
    child = _opener(database.url)
    _ready(child)
    engine = _engine(database)
    with migration_lock(engine) as connection:
        _go(child)
        time.sleep(2)
        assert child.poll() is None, "the second process did not wait for the lock"
        command.upgrade(alembic_config(connection), "head")
    assert _finished(child).split() == [head_revision()]
    engine.dispose()
    _assert_every_row_kept(database, written)


def test_a_database_at_head_opens_without_waiting_for_the_lock(database: Database) -> None:
    """Opening a database already at head reads its revision and never queues for the lock."""
    engine = _engine(database)
    upgrade_to_head(engine, create=True)
    # The lock is let go before the pool waits for its thread, even if the open hangs.
    with ThreadPoolExecutor(1) as opener, migration_lock(engine):
        store = opener.submit(database.open).result(timeout=10)
    assert store.project("p-1") is None
    engine.dispose()


def test_a_database_from_a_newer_clipgate_is_refused(database: Database) -> None:
    """A revision this clipgate does not know stops the open, naming it and what to do."""
    engine = _engine(database)
    upgrade_to_head(engine, create=True)
    with engine.begin() as connection:
        connection.execute(sa.update(VERSIONS).values(version_num="0099"))
    engine.dispose()
    with pytest.raises(ConfigurationError) as refused:
        database.open()
    assert "at schema revision '0099'" in str(refused.value)
    assert f"newest revision '{head_revision()}'" in str(refused.value)
    assert "Upgrade clipgate" in str(refused.value)


def _empty_database(database: Database) -> None:
    if database.kind == "sqlite":
        database.sqlite_path.touch()


def _tables(database: Database) -> set[str]:
    engine = _engine(database)
    with engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    return names


def test_a_command_that_only_reads_never_makes_a_database(database: Database) -> None:
    """`existing_store` on a database without clipgate's tables refuses and creates nothing."""
    _empty_database(database)
    with pytest.raises(ConfigurationError, match="no clipgate database"):
        existing_store(Settings(database_url=database.url))
    assert _tables(database) == set()


def test_a_command_that_only_reads_upgrades_an_old_database(database: Database) -> None:
    """`existing_store` on a pre-migration database upgrades it: this code reads no other."""
    written = _make_legacy(database, Legacy(NOTION_POLL))
    database.opened.append(existing_store(Settings(database_url=database.url)))
    _assert_every_row_kept(database, written)
    assert VERSION_TABLE in _tables(database)


@pytest.fixture
def reader_role(database: Database) -> Iterator[str]:
    """A PostgreSQL role that may read and write clipgate's rows but not change its schema."""
    assert database.kind == "postgresql"
    role = f"clipgate_reader_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    try:
        yield role
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP OWNED BY {role}"))
            connection.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


def _grant_rows(database: Database, role: str) -> None:
    name = database.schema
    engine = _engine(database)
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT USAGE ON SCHEMA {name} TO {role}"))
        connection.execute(
            sa.text(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {name} TO {role}"
            )
        )
        connection.execute(sa.text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {name} TO {role}"))
    engine.dispose()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_role_that_may_not_upgrade_is_told_the_command_to_run(
    database: Database, reader_role: str
) -> None:
    """A role that may not alter the tables is told the exact command; after it, it opens them."""
    written = _make_legacy(database, Legacy(RECOVERY))
    _grant_rows(database, reader_role)
    as_reader = Database(
        "postgresql",
        database.url.replace("//postgres@", f"//{reader_role}@"),
        database.schema,
        database.opened,
    )

    with pytest.raises(ConfigurationError) as refused:
        as_reader.open()

    message = str(refused.value)
    assert "is at revision none (made before migrations)" in message
    assert f"this clipgate needs {head_revision()}" in message
    owner_url = database.url.replace("//postgres@", "//OWNER@")
    assert f"Run `CLIPGATE_DATABASE_URL='{owner_url}' clipgate setup` once" in message
    assert current_revision_of(database) is None

    database.open()
    _grant_rows(database, reader_role)
    store = as_reader.open()
    assert store.project("p-1") is not None
    _assert_every_row_kept(database, written)


def current_revision_of(database: Database) -> str | None:
    """The revision the database is at, read on a connection of the test's own."""
    engine = _engine(database)
    with engine.connect() as connection:
        revision = current_revision(connection)
    engine.dispose()
    return revision


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_setup_upgrades_the_database_and_says_its_revision(
    database: Database,
    prefect_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`clipgate setup` upgrades the database the settings name before anything else."""
    written = _make_legacy(database, Legacy(FIRST))
    monkeypatch.setenv("CLIPGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLIPGATE_DATABASE_URL", database.url)

    assert main(["setup"]) == 0

    said = capsys.readouterr().out.splitlines()
    assert (
        said[0] == f"the clipgate database {database.url} is at schema revision {head_revision()}"
    )
    _assert_every_row_kept(database, written)


def test_the_wheel_carries_the_migrations(tmp_path: Path) -> None:
    """Installed from the wheel alone, clipgate finds its revisions and makes a database."""
    uv = ROOT / ".tools" / "bin" / "uv"
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", tmp_path / "dist", ROOT],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("clipgate-*.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(unpacked)
    for needed in ("env.py", "script.py.mako", "versions/v0001_baseline.py"):
        assert f"clipgate/migrations/{needed}" in names
    opened = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            f"{OPENER_IMPORTS}"
            "assert sys.modules['clipgate'].__file__.startswith(sys.argv[1])\n"
            f"{OPEN_AND_SAY}",
            unpacked,
            f"sqlite:///{tmp_path / 'fresh.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.split() == [head_revision()]
