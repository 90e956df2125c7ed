"""Alembic's entry point: runs revisions on the connection `clipgate.migrations` hands over.

That connection is already in the transaction that holds the migration lock, so Alembic
neither opens nor commits one of its own.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import clipgate.store  # noqa: F401  (declares the tables autogenerate compares against)
from clipgate.migrations import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a column only by copying its table; batch operations do that.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
