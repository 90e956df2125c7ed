"""First-frame thumbnails of clips, made with the wheel's ffmpeg."""

from __future__ import annotations

import os
from pathlib import Path

from clipgate.errors import MP4Error


def thumbnail(clip: Path, output: Path, width: int = 120) -> Path:
    """Write the first frame of `clip` as a JPEG `width` pixels wide; returns `output`."""
    # Imported here, not at the top: every `clipgate mp4` command imports this package,
    # and starts faster without subprocess and imageio_ffmpeg, which only thumbnails need.
    import subprocess

    from clipgate.ffmpeg import ffmpeg_exe, partial_path

    partial = partial_path(output)
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(clip), "-map", "0:v:0", "-frames:v", "1",
        "-vf", f"scale={width}:-2", "-q:v", "3", "-f", "mjpeg", str(partial),
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        made = completed.returncode == 0 and partial.is_file() and partial.stat().st_size > 0
        if made:
            os.replace(partial, output)
    except subprocess.TimeoutExpired:
        raise MP4Error(f"{clip}: cannot make a thumbnail: ffmpeg took over 120 s") from None
    finally:
        partial.unlink(missing_ok=True)
    if not made:
        reason = completed.stderr.strip().splitlines()[-1:] or ["no frame decoded"]
        raise MP4Error(f"{clip}: cannot make a thumbnail: {reason[0]}")
    return output
