"""Prefect Blocks holding credentials and ids, and how run settings pick them up."""

from __future__ import annotations

from typing import cast

from clipgate.settings import Settings, load_settings


def load_run_settings() -> Settings:
    """Settings from the environment, with the blocks they name loaded in."""
    settings = load_settings()
    if settings.r2_block and settings.r2 is None:
        from blocks.r2 import R2Bucket

        bucket = cast(R2Bucket, R2Bucket.load(settings.r2_block))
        settings = settings.model_copy(update={"r2": bucket.r2_config()})
    if settings.kling_block and settings.kling is None:
        from blocks.kling import KlingAccount

        account = cast(KlingAccount, KlingAccount.load(settings.kling_block))
        settings = settings.model_copy(update={"kling": account.kling_config()})
    if settings.notion_block and settings.notion is None:
        from blocks.notion import NotionWorkspace

        workspace = cast(NotionWorkspace, NotionWorkspace.load(settings.notion_block))
        settings = settings.model_copy(update={"notion": workspace.notion_config()})
    return settings
