"""Sample material for the demo: 18 distinct stills and a project manifest."""

from __future__ import annotations

import json
from pathlib import Path

from clipgate.ffmpeg import partial_path, run_ffmpeg
from clipgate.models import CLIP_COUNT, ClipSpec, VideoProject

_MOTIONS = ("slow zoom in", "pan right", "zoom out", "pan left", "pan up", "pan down")
_GRADIENT_TYPES = ("linear", "radial", "circular", "spiral", "square")


def make_still(output: Path, seed: int, width: int = 1280, height: int = 720) -> Path:
    """A colourful still image, different for every seed."""
    if output.exists():
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    kind = _GRADIENT_TYPES[seed % len(_GRADIENT_TYPES)]
    source = f"gradients=s={width}x{height}:seed={seed}:n={3 + seed % 5}:type={kind}"
    partial = partial_path(output)
    run_ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", "1", str(partial)], "draw a still")
    partial.replace(output)
    return output


def make_sample_project(
    folder: Path,
    project_id: str,
    channel: str = "demo-channel",
    width: int = 1280,
    height: int = 720,
) -> tuple[VideoProject, Path]:
    """Stills for 18 clips and the manifest describing them; returns the project and manifest."""
    clips = [
        ClipSpec(
            number=number,
            composite_image=make_still(folder / f"still-{number:02d}.png", number, width, height),
            motion_prompt=_MOTIONS[(number - 1) % len(_MOTIONS)],
            narration=f"Clip {number}. A scene of colour and light, part {number} of {CLIP_COUNT}.",
        )
        for number in range(1, CLIP_COUNT + 1)
    ]
    project = VideoProject(project_id=project_id, channel=channel, clips=clips)
    manifest = folder / f"{project_id}.json"
    manifest.write_text(json.dumps(project.model_dump(mode="json"), indent=2))
    return project, manifest
