"""`clipgate setup`: the Blocks, global concurrency limits and checks a deployment needs."""

from __future__ import annotations

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
from clipgate.settings import Settings
from tasks.clips import GENERATION_LIMITS
from tasks.publish import NOTION_LIMIT


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
    """Save the Notion and R2 settings from the environment as Blocks; what was saved."""
    saved = []
    if settings.notion is not None:
        name = settings.notion_block or "clipgate"
        NotionWorkspace(
            token=settings.notion.token,
            tasks_database_id=settings.notion.tasks_database_id,
            videos_database_id=settings.notion.videos_database_id,
            base_url=settings.notion.base_url,
        ).save(name, overwrite=True)
        saved.append(f"NotionWorkspace {name!r}")
    if settings.kling is not None:
        name = settings.kling_block or "clipgate"
        KlingAccount(
            access_key=settings.kling.access_key,
            secret_key=settings.kling.secret_key,
            base_url=settings.kling.base_url,
            model=settings.kling.model,
            mode=settings.kling.mode,
            duration=settings.kling.duration,
            negative_prompt=settings.kling.negative_prompt,
        ).save(name, overwrite=True)
        saved.append(f"KlingAccount {name!r}")
    if settings.r2 is not None:
        name = settings.r2_block or "clipgate"
        R2Bucket(**settings.r2.model_dump(include=set(R2Bucket.model_fields))).save(
            name, overwrite=True
        )
        saved.append(f"R2Bucket {name!r}")
    return saved
