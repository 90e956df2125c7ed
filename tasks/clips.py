"""Tasks that make clips: each a thin wrapper over one core call."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from prefect import Task, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.logging.loggers import task_run_logger

from clipgate import clips
from clipgate.clips import ProducedClip
from clipgate.errors import TransientGenerationError
from clipgate.models import ClipKey, VideoProject
from clipgate.settings import Settings
from clipgate.wiring import build_generator, build_storage, build_store
from prefect_glue.clip_cache import clip_cache_policy, clip_result_storage
from prefect_glue.run_settings import GENERATION_LIMITS, load_run_settings


def clip_cache_key(_context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache a made clip on its clip key alone, so any later run of the project reuses it."""
    key: ClipKey = parameters["key"]
    return f"produce-clip.{key.token}"


# A policy rather than cache_key_fn, which would override any policy given in with_options.
CLIP_KEY_CACHE = CacheKeyFnPolicy(cache_key_fn=clip_cache_key)


def retry_only_transient(task: Task[..., Any], run: TaskRun, state: State[Any]) -> bool:
    """Retry rate limits, timeouts and 5xx, with a warning; anything else fails at once.

    Prefect asks only while retries remain, so the wait logged is the one it will take.
    """
    error = state.result(raise_on_failure=False)
    if not isinstance(error, TransientGenerationError):
        return False
    delays = task.retry_delay_seconds
    done = max(run.run_count - 1, 0)
    if isinstance(delays, list):
        wait = delays[min(done, len(delays) - 1)] if delays else 0
    else:
        wait = delays or 0
    task_run_logger(run, task=task).warning(
        "%s: %s; trying again in %g s (retry %d of %d)",
        run.name,
        error,
        wait,
        done + 1,
        task.retries,
    )
    return True


# The generator already retries each request with backoff (Kling: up to 8 times, logging
# each); a clip reaching these retries has been refused for minutes or outlasted its wait.
@task(
    name="produce-clip",
    task_run_name="clip {key.number} attempt {key.attempt}",
    cache_policy=CLIP_KEY_CACHE,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_only_transient,
)
def produce_clip(project: VideoProject, key: ClipKey) -> ProducedClip:
    """Generate, faststart, store and record one clip."""
    settings = load_run_settings()
    generator = build_generator(settings)
    # A paid generator's slots are shared by every run on every machine. A slot is leased
    # for the shortest time the server takes (renewed while the clip is made), so a killed
    # worker's slots come back within a minute instead of Prefect's default five.
    with (
        concurrency(GENERATION_LIMITS[generator.name], occupy=1, strict=True, lease_duration=60)
        if generator.name in GENERATION_LIMITS
        else nullcontext()
    ):
        return clips.produce_clip(
            project,
            key,
            generator=generator,
            storage=build_storage(settings, project.channel),
            store=build_store(settings),
            work_dir=settings.work_dir,
        )


def produce_clip_for(settings: Settings) -> Task[[VideoProject, ClipKey], ProducedClip]:
    """produce-clip on the cache the settings choose: its result storage, and its locks."""
    return produce_clip.with_options(
        result_storage=clip_result_storage(settings),
        cache_policy=clip_cache_policy(settings, CLIP_KEY_CACHE),
    )
