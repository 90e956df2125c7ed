"""Tasks that speak the narration once the clips are approved."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from clipgate import gate, narration
from clipgate.models import VideoProject
from clipgate.wiring import build_store
from prefect_glue.run_settings import load_run_settings


@task(cache_policy=NO_CACHE)
def start_narration(project_id: str) -> None:
    """Move the approved project to generating_audio."""
    gate.start_narration(build_store(load_run_settings()), project_id)


@task(cache_policy=NO_CACHE, task_run_name="narrate clip {number}")
def narrate_clip(project: VideoProject, number: int) -> str | None:
    """Speak one clip's narration (skipped when it already exists)."""
    spoken = narration.narrate_clip(load_run_settings().narration_dir, project, number)
    return str(spoken.resolve()) if spoken else None


@task(cache_policy=NO_CACHE)
def finish_narration(project_id: str, audio_files: Sequence[str]) -> None:
    """Record where the narration files are."""
    gate.finish_narration(build_store(load_run_settings()), project_id, audio_files)
