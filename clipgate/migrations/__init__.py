"""The store's schema, one Alembic revision at a time, configured here in code (no alembic.ini).

`upgrade_to_head` is what opening a store does: a database at this clipgate's newest
revision is left alone after one read; an older one, or one made before migrations, is
upgraded by exactly one process at a time; one at a revision this clipgate does not
know (a newer clipgate upgraded it) is refused.

Changing a table model in `clipgate/store.py` needs a revision in `versions/`; with
`connection` on a database at head, Alembic writes a draft to check by hand:

    command.revision(alembic_config(connection), "what changed", autogenerate=True,
                     rev_id="0002")

`tests/test_migrations.py` fails while the models and the revisions disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from clipgate.errors import ConfigurationError

# Not Alembic's default name: a database shared with Prefect's server (which keeps its
# own alembic_version) would otherwise look like a clipgate from the future.
VERSION_TABLE = "clipgate_schema_version"

_PROJECTS_TABLE = "video_projects"
_SQLITE_BUSY_TIMEOUT_S = 30
# PostgreSQL's SQLSTATE for "permission denied" and "must be owner".
_INSUFFICIENT_PRIVILEGE = "42501"


def alembic_config(connection: Connection) -> Config:
    """Alembic's settings for clipgate's revisions, run on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    # File names must be module names, which mypy checks.
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this clipgate knows."""
    head = _revisions().get_current_head()
    assert head is not None, "clipgate.migrations has no revisions"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None if it has never been migrated."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade_to_head(engine: Engine, *, create: bool) -> str:
    """Bring the database to this clipgate's newest revision; the revision it is at.

    With `create` false a database without clipgate's tables is refused, not made.
    """
    head = head_revision()
    with engine.connect() as connection:
        current = _known(current_revision(connection), engine)
        if current == head:
            return head
        if not create and current is None and not inspect(connection).has_table(_PROJECTS_TABLE):
            raise ConfigurationError(
                f"no clipgate database at {_shown(engine)}: set CLIPGATE_DATABASE_URL (or "
                "CLIPGATE_HOME) to where the gate ran, or run `clipgate setup` to make one there"
            )
    try:
        with migration_lock(engine) as connection:
            # Read again under the lock: another process may have upgraded meanwhile.
            if _known(current_revision(connection), engine) != head:
                command.upgrade(alembic_config(connection), "head")
    except DBAPIError as error:
        if not _is_permission_error(error):
            raise
        raise ConfigurationError(
            f"the clipgate database at {_shown(engine)} is at revision "
            f"{current or 'none (made before migrations)'} and this clipgate needs {head}, "
            f"but it may not change the database ({_first_line(error)}). "
            f"{_upgrade_instruction(engine)}"
        ) from None
    return head


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that only one process at a time can hold per database.

    PostgreSQL: a transaction-scoped advisory lock keyed on the schema, released at
    commit. SQLite: `BEGIN IMMEDIATE`, which takes the database's single write lock before
    anything is read; another process waits for it (busy timeout) and then reads the
    revision the first one committed. Alembic's own transaction would not do on SQLite:
    Python's sqlite3 opens no transaction before DDL, so each CREATE TABLE would commit
    on its own and a second process could see half a schema.
    """
    if engine.dialect.name == "sqlite":
        with (
            _sqlite_write_locking(engine) as locking,
            locking.connect() as connection,
            connection.begin(),
        ):
            yield connection
        return
    with engine.connect() as connection, connection.begin():
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key || coalesce(current_schema(), '')))"),
            {"key": "clipgate schema migration "},
        )
        yield connection


@contextmanager
def _sqlite_write_locking(engine: Engine) -> Iterator[Engine]:
    if engine.url.database in (None, "", ":memory:"):
        # A database in memory belongs to one process, and lives on the engine's connection.
        yield engine
        return
    locking = create_engine(
        engine.url, poolclass=NullPool, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S}
    )

    def leave_transactions_to_us(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(locking, "connect", leave_transactions_to_us)
    event.listen(locking, "begin", begin_immediate)
    try:
        yield locking
    finally:
        locking.dispose()


@cache
def _revisions() -> ScriptDirectory:
    return ScriptDirectory(str(Path(__file__).parent))


def _known(revision: str | None, engine: Engine) -> str | None:
    if revision is None:
        return None
    try:
        _revisions().get_revision(revision)
    except CommandError:
        raise ConfigurationError(
            f"the clipgate database at {_shown(engine)} is at schema revision {revision!r}, "
            f"which this clipgate (newest revision {head_revision()!r}) does not know: a newer "
            "clipgate upgraded it. Upgrade clipgate on this machine to that version or later."
        ) from None
    return revision


def _is_permission_error(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == _INSUFFICIENT_PRIVILEGE)
    return getattr(error.orig, "sqlite_errorname", "") in ("SQLITE_READONLY", "SQLITE_CANTOPEN")


def _upgrade_instruction(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return (
            f"Run `CLIPGATE_DATABASE_URL='{_shown(engine)}' clipgate setup` once as a user "
            f"who may write {engine.url.database} and its folder."
        )
    owner = engine.url.set(username="OWNER", password=None).render_as_string()
    return (
        f"Run `CLIPGATE_DATABASE_URL='{owner}' clipgate setup` once, with OWNER a role that "
        "owns clipgate's tables (or may create tables in the schema, for a new database)."
    )


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _first_line(error: DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0]
