"""The default generator: ffmpeg animates the still with a zoom or pan, no credentials.

Clips come out faststart (moov before mdat), written so by the encoder.

The motion prompt picks the camera move ("zoom out", "pan left", ...; zoom in by
default); each new attempt of a clip moves differently, as a regenerated clip should.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clipgate.errors import GenerationError
from clipgate.ffmpeg import partial_path, run_ffmpeg
from clipgate.generators import GenerationResult
from clipgate.models import ClipKey, ClipSpec

_CENTER_X = "iw/2-(iw/zoom/2)"
_CENTER_Y = "ih/2-(ih/zoom/2)"


@dataclass(frozen=True)
class LocalMotionGenerator:
    """Animates a still into an H.264 MP4 with ffmpeg's zoompan."""

    seconds: float
    width: int
    height: int
    fps: int
    name: str = "local"

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult:
        if not spec.composite_image.is_file():
            raise GenerationError(
                f"clip {key.number}: composite image {spec.composite_image} does not exist"
            )
        frames = max(1, round(self.seconds * self.fps))
        zoom, x, y = camera_move(spec.motion_prompt, key.attempt, frames)
        size = f"{self.width}x{self.height}"
        video_filter = (
            f"scale={self.width}:{self.height}:force_original_aspect_ratio=increase,"
            f"crop={self.width}:{self.height},"
            f"zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={size}:fps={self.fps},"
            "format=yuv420p"
        )
        partial = partial_path(output)
        try:
            run_ffmpeg(
                [
                    *("-i", str(spec.composite_image), "-vf", video_filter),
                    *("-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast"),
                    # Moov first from the encoder itself, so the pipeline's faststart finds
                    # the clip streamable and writes nothing.
                    *("-crf", "26", "-an", "-movflags", "+faststart", str(partial)),
                ],
                what=f"animate clip {key.number}",
            )
        except RuntimeError as error:
            partial.unlink(missing_ok=True)
            raise GenerationError(str(error)) from None
        os.replace(partial, output)
        return GenerationResult(generator=self.name)


def camera_move(prompt: str, attempt: int, frames: int) -> tuple[str, str, str]:
    """zoompan expressions (zoom, x, y) for a prompt; later attempts move further."""
    words = prompt.lower()
    depth = 0.15 + 0.08 * ((attempt - 1) % 4)
    progress = f"on/{frames}"
    if "zoom out" in words:
        return f"1+{depth}*(1-{progress})", _CENTER_X, _CENTER_Y
    pan_zoom = f"{1 + depth}"
    if "pan left" in words:
        return pan_zoom, f"(iw-iw/zoom)*(1-{progress})", _CENTER_Y
    if "pan right" in words:
        return pan_zoom, f"(iw-iw/zoom)*{progress}", _CENTER_Y
    if "pan up" in words or "tilt up" in words:
        return pan_zoom, _CENTER_X, f"(ih-ih/zoom)*(1-{progress})"
    if "pan down" in words or "tilt down" in words:
        return pan_zoom, _CENTER_X, f"(ih-ih/zoom)*{progress}"
    if attempt % 2 == 0:
        return f"1+{depth}*{progress}", f"(iw-iw/zoom)*{progress}", _CENTER_Y
    return f"1+{depth}*{progress}", _CENTER_X, _CENTER_Y
