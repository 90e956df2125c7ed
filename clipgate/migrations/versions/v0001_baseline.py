"""Baseline: the schema clipgate made with `create_all` before it had migrations.

A fresh database gets these tables. A database made before migrations (no version table,
clipgate's tables present) is brought to them in place: missing tables are created,
columns that arrived late are added, rows that predate a column get its default, and a
NOT NULL column that clipgate's old `_add_missing_columns` added as nullable becomes NOT
NULL. No row is removed.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# What a row written before its column existed holds there, as the models' defaults say.
_LATE_COLUMN_DEFAULTS = {
    ("video_projects", "notion_page_id"): "''",
    ("video_projects", "pending_review"): "'{}'",
}


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def _baseline_schema() -> sa.MetaData:
    # Frozen here, not read from the models: later revisions change the models, never this.
    schema = sa.MetaData()
    sa.Table(
        "video_projects",
        schema,
        sa.Column("project_id", sa.String(), primary_key=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("error_log", sa.JSON(), nullable=True),
        sa.Column("failed_clip_numbers", sa.JSON(), nullable=True),
        sa.Column("step_metadata", sa.JSON(), nullable=True),
        _timestamp("review_started_at"),
        _timestamp("review_completed_at"),
        sa.Column("flow_run_id", sa.String(), nullable=True),
        sa.Column("notion_page_id", sa.String(), nullable=False),
        sa.Column("pending_review", sa.JSON(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Index("ix_video_projects_notion_page_id", "notion_page_id"),
    )
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
        _timestamp("updated_at"),
    )
    sa.Table(
        "generation_attempts",
        schema,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("clip_key", sa.String(), nullable=False, unique=True),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("clip_number", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("generator", sa.String(), nullable=False),
        sa.Column("external_task_id", sa.String(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        _timestamp("created_at"),
        sa.Column("produced", sa.JSON(), nullable=True),
        _timestamp("provider_url_expires_at"),
        sa.Index("ix_generation_attempts_project_id", "project_id"),
    )
    sa.Table(
        "review_events",
        schema,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("clips", sa.JSON(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=True),
        sa.Column("reviewer", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        _timestamp("review_started_at"),
        _timestamp("decided_at"),
        sa.Column("review_seconds", sa.Float(), nullable=True),
        sa.UniqueConstraint("project_id", "review_round"),
        sa.Index("ix_review_events_project_id", "project_id"),
    )
    sa.Table(
        "poll_cursors",
        schema,
        sa.Column("name", sa.String(), primary_key=True),
        _timestamp("since"),
    )
    sa.Table(
        "project_specs",
        schema,
        sa.Column("project_id", sa.String(), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=True),
    )
    sa.Table(
        "run_heartbeats",
        schema,
        sa.Column("project_id", sa.String(), primary_key=True),
        sa.Column("flow_run_id", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _timestamp("beat_at"),
        sa.Column("stopped", sa.Boolean(), nullable=False),
    )
    sa.Table(
        "webhook_events",
        schema,
        sa.Column("event_id", sa.String(), primary_key=True),
        _timestamp("received_at"),
    )
    return schema


def upgrade() -> None:
    connection = op.get_bind()
    schema = _baseline_schema()
    made_before_migrations = set(sa.inspect(connection).get_table_names()) & set(schema.tables)
    # create_all skips tables that exist, so this also adds those an old database lacks.
    schema.create_all(connection)
    for table in schema.sorted_tables:
        if table.name in made_before_migrations:
            _bring_to_baseline(connection, table)


def _bring_to_baseline(connection: sa.Connection, table: sa.Table) -> None:
    present = {column["name"]: column for column in sa.inspect(connection).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            # Nullable first, as `_add_missing_columns` did; the rows are filled in below.
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    for (table_name, column_name), default in _LATE_COLUMN_DEFAULTS.items():
        if table_name == table.name:
            op.execute(
                f'UPDATE "{table_name}" SET "{column_name}" = {default} '  # noqa: S608
                f'WHERE "{column_name}" IS NULL'
            )
    loose = [
        column
        for column in table.columns
        if not column.nullable and (column.name not in present or present[column.name]["nullable"])
    ]
    if loose:
        with op.batch_alter_table(table.name) as batch:
            for column in loose:
                batch.alter_column(column.name, existing_type=column.type, nullable=False)
    indexed = {index["name"] for index in sa.inspect(connection).get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexed:
            columns = [column.name for column in index.columns]
            op.create_index(index.name, table.name, columns, unique=index.unique)


def downgrade() -> None:
    raise NotImplementedError(
        "the baseline revision is not undone: it would drop every table and its rows"
    )
