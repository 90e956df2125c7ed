"""What the review room shows besides the clip: a small preview proxy and a motion strip.

Both come from one ffmpeg run over the finished, faststart clip (one decode feeds both):

- the proxy is about 480p (never larger than the clip), at most 15 frames a second and
  about 300 kbit/s, faststart, so eighteen of them load and play at once on the room's
  wall (Chromium fetches six at a time from one host; at 20 Mbit/s all 18 play within 3 s);
- the motion strip is `STRIP_FRAMES` frames spread evenly over the clip, tiled side by
  side into one JPEG, so motion can be judged at a glance without playing anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clipgate import mp4
from clipgate.errors import MP4Error
from clipgate.ffmpeg import partial_path, run_ffmpeg

PROXY_HEIGHT = 480
PROXY_MAX_FPS = 15
PROXY_MAX_RATE = "300k"
PROXY_BUFFER = "600k"
STRIP_FRAMES = 6
STRIP_FRAME_WIDTH = 160


@dataclass(frozen=True)
class Previews:
    """The files made for one clip, ready to be stored beside it."""

    proxy: Path
    strip: Path


def make_previews(clip: Path, duration_s: float, proxy: Path, strip: Path) -> Previews:
    """Write the preview proxy and motion strip of `clip` (a clip of `duration_s` seconds)."""
    # Frames at least this far apart: the first frame, then one per slice of the clip.
    spacing = max(duration_s, 0.001) / STRIP_FRAMES * 0.999
    graph = (
        "[0:v]split=2[whole][frames];"
        f"[whole]fps='min({PROXY_MAX_FPS},source_fps)',"
        f"scale=-2:'min({PROXY_HEIGHT},ih)':flags=area,setsar=1,format=yuv420p[proxy];"
        f"[frames]select='isnan(prev_selected_t)+gte(t-prev_selected_t,{spacing:.4f})',"
        f"scale={STRIP_FRAME_WIDTH}:-2,tile={STRIP_FRAMES}x1[strip]"
    )
    proxy_partial, strip_partial = partial_path(proxy), partial_path(strip)
    try:
        run_ffmpeg(
            [
                # The clip is decoded once for both outputs; deblocking it adds nothing
                # that a small proxy or a strip of thumbnails would show.
                *("-skip_loop_filter", "all", "-i", str(clip), "-filter_complex", graph),
                *("-map", "[proxy]", "-c:v", "libx264", "-preset", "superfast", "-crf", "32"),
                *("-maxrate", PROXY_MAX_RATE, "-bufsize", PROXY_BUFFER),
                *("-movflags", "+faststart", "-an", "-f", "mp4", str(proxy_partial)),
                *("-map", "[strip]", "-frames:v", "1", "-q:v", "4", "-f", "mjpeg"),
                str(strip_partial),
            ],
            what=f"make the preview proxy and motion strip of {clip.name}",
        )
    except RuntimeError as error:
        proxy_partial.unlink(missing_ok=True)
        strip_partial.unlink(missing_ok=True)
        raise MP4Error(str(error)) from None
    if not mp4.inspect(proxy_partial).faststart:
        proxy_partial.unlink(missing_ok=True)
        strip_partial.unlink(missing_ok=True)
        raise MP4Error(f"{clip}: the preview proxy came out with moov after mdat")
    os.replace(proxy_partial, proxy)
    os.replace(strip_partial, strip)
    return Previews(proxy=proxy, strip=strip)
