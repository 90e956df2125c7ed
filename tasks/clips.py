"""Tasks that make clips: each a thin wrapper over one core call."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from prefect import Task, task
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.logging.loggers import task_run_logger

from blocks import load_run_settings
from clipgate import clips
from clipgate.clips import ProducedClip
from clipgate.errors import TransientGenerationError
from clipgate.models import ClipKey, VideoProject
from clipgate.wiring import build_generator, build_storage, build_store

GENERATION_LIMITS = {"kling": "clipgate-kling"}


def clip_cache_key(_context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache a made clip on its clip key alone, so any later run of the project reuses it."""
    key: ClipKey = parameters["key"]
    return f"produce-clip.{key.token}"


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
    cache_key_fn=clip_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[30, 120],
    retry_condition_fn=retry_only_transient,
)
def produce_clip(project: VideoProject, key: ClipKey) -> ProducedClip:
    """Generate, faststart, store and record one clip."""
    settings = load_run_settings()
    generator = build_generator(settings)
    # A paid generator's slots are shared by every run on every machine.
    with (
        concurrency(GENERATION_LIMITS[generator.name], occupy=1, strict=True)
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
