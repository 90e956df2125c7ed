"""`clipgate setup`: the database, Blocks, concurrency limits and work pool a deployment needs."""

from __future__ import annotations

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectNotFound

from blocks.kling import KlingAccount
from blocks.notion import NotionWorkspace
from blocks.r2 import R2Bucket
from blocks.results import results_bucket
from clipgate.migrations import current_revision
from clipgate.settings import Settings
from clipgate.store import open_store
from prefect_glue.run_settings import GENERATION_LIMITS, NOTION_LIMIT


def concurrency_limits(settings: Settings) -> dict[str, int]:
    """The global limits the tasks take with strict=True, and their slots."""
    return {
        # One Notion publisher at a time across every process keeps a workspace under its rate.
        NOTION_LIMIT: 1,
        GENERATION_LIMITS["kling"]: settings.kling_concurrency,
    }


def ensure_concurrency_limits(limits: dict[str, int]) -> None:
    """Create (or correct) the global concurrency limits the tasks use with strict=True."""
    with get_client(sync_client=True) as client:
        for name, slots in limits.items():
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots)
                )
                continue
            if existing.limit != slots or not existing.active:
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=slots, active=True)
                )


WORK_POOL = "clipgate"


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """The process work pool prefect.yaml deploys to, created if missing."""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def save_blocks(settings: Settings) -> list[str]:
    """Save the Notion, Kling, R2 and results settings from the environment as Blocks.

    Returns what was saved.
    """
    blocks: list[tuple[str, Block | None]] = [
        (
            settings.notion_block,
            NotionWorkspace(config=settings.notion) if settings.notion else None,
        ),
        (settings.kling_block, KlingAccount(config=settings.kling) if settings.kling else None),
        (settings.r2_block, R2Bucket(config=settings.r2) if settings.r2 else None),
        (
            settings.results_block,
            results_bucket(settings.results_r2) if settings.results_r2 else None,
        ),
    ]
    saved = []
    for name, block in blocks:
        if block is not None:
            block.save(name or "clipgate", overwrite=True)
            saved.append(f"{type(block).__name__} {name or 'clipgate'!r}")
    return saved


def upgrade_database(settings: Settings) -> str:
    """Make or upgrade the store the settings name; which revision it is at now."""
    engine = open_store(settings.resolved_database_url).engine
    with engine.connect() as connection:
        revision = current_revision(connection)
    shown = engine.url.render_as_string(hide_password=True)
    return f"the clipgate database {shown} is at schema revision {revision}"
