"""Run settings with the Blocks they name loaded in, and the global concurrency limits' names."""

from __future__ import annotations

from typing import cast

from clipgate.settings import Settings, load_settings

# Global concurrency limits (made by `clipgate setup`) the tasks take a slot of.
GENERATION_LIMITS = {"kling": "clipgate-kling"}
NOTION_LIMIT = "clipgate-notion"


def load_run_settings() -> Settings:
    """Settings from the environment, with the blocks they name loaded in."""
    settings = load_settings()
    if settings.r2_block and settings.r2 is None:
        from blocks.r2 import R2Bucket

        bucket = cast(R2Bucket, R2Bucket.load(settings.r2_block))
        settings = settings.model_copy(update={"r2": bucket.config})
    if settings.kling_block and settings.kling is None:
        from blocks.kling import KlingAccount

        account = cast(KlingAccount, KlingAccount.load(settings.kling_block))
        settings = settings.model_copy(update={"kling": account.config})
    if settings.notion_block and settings.notion is None:
        from blocks.notion import NotionWorkspace

        workspace = cast(NotionWorkspace, NotionWorkspace.load(settings.notion_block))
        settings = settings.model_copy(update={"notion": workspace.config})
    return settings
