"""Run settings with the Blocks they name loaded in, and the global concurrency limits' names."""

from __future__ import annotations

import threading
from typing import TypeVar, cast

from prefect.blocks.core import Block
from prefect.runtime import flow_run

from clipgate.settings import Settings, load_settings

# Global concurrency limits (made by `clipgate setup`) the tasks take a slot of.
GENERATION_LIMITS = {"kling": "clipgate-kling"}
NOTION_LIMIT = "clipgate-notion"

# Blocks loaded, by flow run: every task of a run reads its Blocks once (a
# run's 18 clips made 36 block reads on the server), and a new run sees edited Blocks.
_RUNS_REMEMBERED = 32
_loaded: dict[tuple[str, str, str], Block] = {}
_loaded_lock = threading.Lock()

LoadedBlock = TypeVar("LoadedBlock", bound=Block)


def load_run_settings() -> Settings:
    """Settings from the environment, with the blocks they name loaded in."""
    settings = load_settings()
    if settings.r2_block and settings.r2 is None:
        from blocks.r2 import R2Bucket

        bucket = _block(R2Bucket, settings.r2_block)
        settings = settings.model_copy(update={"r2": bucket.config})
    if settings.kling_block and settings.kling is None:
        from blocks.kling import KlingAccount

        account = _block(KlingAccount, settings.kling_block)
        settings = settings.model_copy(update={"kling": account.config})
    if settings.notion_block and settings.notion is None:
        from blocks.notion import NotionWorkspace

        workspace = _block(NotionWorkspace, settings.notion_block)
        settings = settings.model_copy(update={"notion": workspace.config})
    return settings


def _block(block_type: type[LoadedBlock], name: str) -> LoadedBlock:
    """Block `name`, read once per flow run (every time outside a run)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return cast(LoadedBlock, block_type.load(name))
    key = (run_id, block_type.__name__, name)
    with _loaded_lock:
        if key in _loaded:
            return cast(LoadedBlock, _loaded[key])
    block = cast(LoadedBlock, block_type.load(name))
    with _loaded_lock:
        if len(_loaded) >= _RUNS_REMEMBERED * 3:
            _loaded.clear()
        _loaded[key] = block
    return block
