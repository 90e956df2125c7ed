"""The flow's thread pool, as wide as the generator's global limit when the run starts.

A pool narrower than the limit would be the real cap (4 threads left a limit of 5 with
one slot idle); a wider one would only park threads on the server's slot queue, which
hands slots out later than they free up. The decorator is evaluated at import, before
any setting or server is known, so the width is read from both when Prefect copies the
runner for a run.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.task_runners import ThreadPoolTaskRunner

from clipgate.models import CLIP_COUNT
from clipgate.settings import Settings, load_settings
from prefect_glue.run_settings import GENERATION_LIMITS

# The local generator has no shared limit: its clips are ffmpeg encodes on this machine.
LOCAL_GENERATION_WORKERS = 4


def generation_workers(settings: Settings) -> int:
    """Clips one run makes at once: the generator's global limit (at most 18), or 4 locally."""
    limit = GENERATION_LIMITS.get(settings.generator)
    if limit is None:
        return LOCAL_GENERATION_WORKERS
    with get_client(sync_client=True) as client:
        try:
            slots = client.read_global_concurrency_limit_by_name(limit).limit
        except ObjectNotFound:
            # produce-clip takes the limit strictly and stops with its own message.
            slots = settings.kling_concurrency
    return max(1, min(slots, CLIP_COUNT))


class GenerationPool(ThreadPoolTaskRunner[Any]):
    """A ThreadPoolTaskRunner sized by `generation_workers` for every run it is copied for."""

    def duplicate(self) -> GenerationPool:
        return GenerationPool(max_workers=generation_workers(load_settings()))
