"""Narration: one spoken audio file per approved clip."""

from __future__ import annotations

from prefect import flow, unmapped

from clipgate.models import VideoProject
from tasks.narration import finish_narration, narrate_clip, start_narration
from tasks.publish import publish_review


@flow(name="narration")
def narration(project: VideoProject) -> list[str]:
    """Speak every clip's narration and record the files."""
    start_narration(project.project_id)
    publish_review(project)
    numbers = [clip.number for clip in project.clips]
    spoken = narrate_clip.map(unmapped(project), numbers).result()
    files = [path for path in spoken if path]
    finish_narration(project.project_id, files)
    publish_review(project)
    return files
