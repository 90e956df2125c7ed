"""The ffmpeg binary shipped in the imageio-ffmpeg wheel, and a runner with clear errors."""

from __future__ import annotations

import subprocess
import uuid
from functools import cache
from pathlib import Path

import imageio_ffmpeg

from clipgate.errors import ConfigurationError


@cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary from the imageio-ffmpeg wheel."""
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as error:
        raise ConfigurationError(
            f"no ffmpeg binary found ({error}); reinstall the imageio-ffmpeg wheel"
        ) from None


def run_ffmpeg(arguments: list[str], what: str, timeout_s: float = 600) -> None:
    """Run ffmpeg quietly; on failure raise `RuntimeError` with its last error lines."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"ffmpeg failed to {what} (exit {completed.returncode}): {tail}")


def partial_path(final: Path) -> Path:
    """A temp name next to `final`, unique per call, so the rename stays on one filesystem.

    Unique because two runs of one project may write the same file at once; each renames
    a whole file into place and neither removes the other's half-written one.
    """
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex[:12]}.part{final.suffix}")
