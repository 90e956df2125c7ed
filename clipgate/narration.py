"""Narration audio: one spoken WAV per clip from its narration text."""

from __future__ import annotations

import hashlib
from pathlib import Path

from clipgate.models import VideoProject
from clipgate.speech import speak_to_wav


def narration_path(root: Path, project: VideoProject, number: int) -> Path:
    """Where a clip's narration lives; the text's hash in the name makes new text a new file."""
    text = project.clip(number).narration
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return root / project.channel / project.project_id / f"clip-{number:02d}-{digest}.wav"


def narrate_clip(root: Path, project: VideoProject, number: int) -> Path | None:
    """Speak clip `number`'s narration once; None when the clip has no narration text."""
    if not project.clip(number).narration.strip():
        return None
    target = narration_path(root, project, number)
    if target.exists():
        return target
    return speak_to_wav(project.clip(number).narration, target)
