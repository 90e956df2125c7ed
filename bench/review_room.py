"""The review room in Chromium: first frame, 2x playback, the wall, and what previews cost.

Everything runs here: the local generator makes 18 clips (10 s of 1280x720 at 25 fps by
default, from textured stills), the room serves them from a temporary home on 127.0.0.1,
and Debian's Chromium (headless, driven by Playwright) watches them over a link Chromium
emulates (CDP `Network.emulateNetworkConditions`, 20 Mbit/s down and 20 ms latency by
default). Measures 1 and 3 run again on plain loopback, which shows what the browser and
the room cost before the network does. Chromium may resolve no name but 127.0.0.1.

The stills get a fine pattern over them because on the demo's smooth gradients x264 packs
10 s of 720p into about 60 KB, which tells nothing about a network; with the pattern
(`--texture 0.6`) a clip is 1.5-6.5 MB (1-5 Mbit/s), the size of real generator output.
`--texture 0` keeps the demo's smooth stills.

Measured, in this one run:
1. First frame: per clip, in a fresh browser context, the time from setting `video.src`
   to `loadeddata`, for the clip as the room stores it (faststart) and for the same clip
   as the generator wrote it (moov after mdat). Both are served by the same room through
   the same route: the second project's stored files are swapped for the as-generated
   ones. Goals: every faststart clip within 1 s, and 5x sooner than moov-at-end (median
   of the per-clip ratios).
2. Playback: the review page plays all 18 clips at 2x; the gap is from one clip's
   `ended` to the next clip's first frame presented (requestVideoFrameCallback's
   expectedDisplayTime). Goals: every gap under 100 ms, and the whole run at most 1 s
   longer than the clips at 2x (91 s for 18 x 10 s). Stalls (`waiting`) are counted.
3. Wall: with the review page open and clip 1 playing, key `w`, then the time until all
   18 proxies play (not paused, currentTime > 0), sampled every animation frame. Goal: 2 s.
4. Previews: per clip, the seconds `make_previews` takes (proxy and motion strip in one
   ffmpeg run) against the seconds the local generator took for that clip, both run one
   clip at a time. Goal: median under 15%.

Run from the repository root (about 7 minutes, 5 with --skip-playback):

    .venv/bin/python -m bench.review_room
    .venv/bin/python -m bench.review_room --seconds 4 --width 640 --height 360 --skip-playback
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from clipgate import gate, mp4
from clipgate.clips import produce_clip
from clipgate.ffmpeg import partial_path, run_ffmpeg
from clipgate.generators import ClipGenerator, GenerationResult
from clipgate.generators.local import LocalMotionGenerator
from clipgate.links import clip_url, review_page_url
from clipgate.media import make_previews
from clipgate.models import CLIP_COUNT, ClipKey, ClipSpec, VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_storage, build_store
from room.server import start_room
from tests.room_helpers import CHROMIUM, CHROMIUM_ARGS

FIRST_FRAME_GOAL_S = 1.0
MOOV_AT_END_GOAL_RATIO = 5.0
GAP_GOAL_MS = 100.0
PLAYBACK_SLACK_GOAL_S = 1.0
WALL_GOAL_S = 2.0
PREVIEW_GOAL_FRACTION = 0.15
SPEED = 2.0
LOAD_TIMEOUT_S = 30.0
WALL_TIMEOUT_S = 30.0
# Any name but 127.0.0.1 fails to resolve: nothing this bench starts can leave the machine.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
CHANNEL = "bench"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}


@dataclass(frozen=True)
class Link:
    """The reviewer's network link, as Chromium emulates it; no Mbit/s means plain loopback."""

    mbit_per_s: float | None
    latency_ms: float

    def page(self, context: BrowserContext) -> Page:
        """A new page of `context` behind this link."""
        page = context.new_page()
        if self.mbit_per_s is None:
            return page
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        bytes_per_s = self.mbit_per_s * 1e6 / 8
        session.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": self.latency_ms,
                "downloadThroughput": bytes_per_s,
                "uploadThroughput": bytes_per_s,
            },
        )
        return page

    def describe(self) -> str:
        if self.mbit_per_s is None:
            return "loopback, not throttled"
        return f"{self.mbit_per_s:g} Mbit/s, {self.latency_ms:g} ms latency"


LOOPBACK = Link(None, 0.0)


@dataclass
class RecordingGenerator:
    """The local generator, timed per clip, keeping each clip with its moov at the end."""

    inner: LocalMotionGenerator
    kept: Path
    seconds: dict[int, float] = field(default_factory=dict)
    name: str = "local"

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult:
        started = time.perf_counter()
        result = self.inner.generate(key, spec, output)
        self.seconds[key.number] = time.perf_counter() - started
        # The generator writes moov first; a plain remux puts it back at the end.
        run_ffmpeg(
            ["-i", str(output), "-c", "copy", str(self.as_generated(key.number))],
            what=f"keep clip {key.number} with its moov at the end",
        )
        return result

    def as_generated(self, number: int) -> Path:
        return self.kept / f"clip-{number:02d}.mp4"


@dataclass(frozen=True)
class ReplayGenerator:
    """Hands back the clips a RecordingGenerator kept: a second project costs no generation."""

    recorded: RecordingGenerator
    name: str = "local"

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult:
        shutil.copyfile(self.recorded.as_generated(key.number), output)
        return GenerationResult(generator=self.name)


def bench_settings(home: Path, arguments: argparse.Namespace) -> Settings:
    """Settings for clips of the asked size, stored locally under `home`, SQLite in it."""
    os.environ.update(
        {
            "CLIPGATE_HOME": str(home),
            "CLIPGATE_DATABASE_URL": "",
            "CLIPGATE_GENERATOR": "local",
            "CLIPGATE_STORAGE": "local",
            "CLIPGATE_CHANNEL_STORAGE": "{}",
            "CLIPGATE_CLIP_SECONDS": str(arguments.seconds),
            "CLIPGATE_CLIP_WIDTH": str(arguments.width),
            "CLIPGATE_CLIP_HEIGHT": str(arguments.height),
            "CLIPGATE_CLIP_FPS": str(arguments.fps),
        }
    )
    return load_settings()


def textured_project(folder: Path, settings: Settings, texture: float) -> VideoProject:
    """The demo's 18 stills and prompts, each still overlaid with a fine pattern at `texture`."""
    project, _manifest = make_sample_project(
        folder, "room-faststart", CHANNEL, settings.clip_width, settings.clip_height
    )
    if texture == 0:
        return project
    size = f"{settings.clip_width}x{settings.clip_height}"
    clips = []
    for clip in project.clips:
        textured = clip.composite_image.with_name(f"textured-{clip.number:02d}.png")
        pattern = f"cellauto=s={size}:rule=30:random_seed={clip.number},gblur=sigma=0.4"
        run_ffmpeg(
            [
                *("-i", str(clip.composite_image), "-f", "lavfi", "-i", pattern),
                "-filter_complex",
                "[0:v]format=gbrp[still];[1:v]format=gbrp[pattern];"
                f"[still][pattern]blend=all_mode=overlay:all_opacity={texture},format=rgb24",
                *("-frames:v", "1", str(textured)),
            ],
            what=f"texture still {clip.number}",
        )
        clips.append(clip.model_copy(update={"composite_image": textured}))
    return project.model_copy(update={"clips": clips})


def make_round(settings: Settings, project: VideoProject, generator: ClipGenerator) -> None:
    """Register `project` and make its clips through the core calls the flow's tasks make.

    One clip at a time, unlike the flow, so that each clip's generation and preview
    timings are not shared with other clips.
    """
    store = build_store(settings)
    storage = build_storage(settings, project.channel)
    gate.register_project(store, project, None)
    keys = gate.clips_to_make(store, project, 1)
    gate.start_generation(store, project.project_id, 1)
    produced = [
        produce_clip(project, key, generator, storage, store, settings.work_dir) for key in keys
    ]
    gate.finish_generation(store, project.project_id, 1, produced)


def clip_key(project: VideoProject, number: int) -> ClipKey:
    return ClipKey(project_id=project.project_id, channel=project.channel, number=number, attempt=1)


def stored_clip(settings: Settings, project: VideoProject, number: int) -> Path:
    return settings.clips_dir / clip_key(project, number).object_key


def put_moov_at_end(
    settings: Settings, project: VideoProject, recorded: RecordingGenerator
) -> None:
    """Swap the project's stored clips for the clips as generated, moov after mdat.

    The flow always stores a clip faststart; the room sends whatever file lies under a
    clip key, so swapping the file lets the other layout take the very same route.
    """
    for number in range(1, CLIP_COUNT + 1):
        stored = stored_clip(settings, project, number)
        swap = partial_path(stored)
        shutil.copyfile(recorded.as_generated(number), swap)
        os.replace(swap, stored)
        if mp4.inspect(stored).faststart:
            sys.exit(f"{stored}: the generator wrote moov first; there is no moov-at-end copy")


def preview_seconds(settings: Settings, project: VideoProject, scratch: Path) -> dict[int, float]:
    """Seconds to make each stored clip's proxy and motion strip again, one clip at a time.

    produce_clip made them already, but it times only the generator.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for number in range(1, CLIP_COUNT + 1):
        clip = stored_clip(settings, project, number)
        duration = mp4.inspect(clip).duration_s
        started = time.perf_counter()
        make_previews(
            clip,
            duration,
            proxy=scratch / f"clip-{number:02d}.proxy.mp4",
            strip=scratch / f"clip-{number:02d}.strip.jpg",
        )
        seconds[number] = time.perf_counter() - started
    return seconds


@contextmanager
def loopback_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched as the room's browser tests do, loopback only."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, LOOPBACK_ONLY]
        )
        try:
            yield browser
        finally:
            browser.close()


FIRST_FRAME = """async ({ src, timeoutMs }) => {
  const video = document.createElement("video");
  Object.assign(video, { muted: true, playsInline: true, preload: "auto" });
  document.body.append(video);
  let started = 0;
  const outcome = new Promise((resolve) => {
    video.addEventListener("loadeddata", () => resolve(performance.now() - started));
    video.addEventListener("error", () => resolve(null));
    setTimeout(() => resolve(null), timeoutMs);
  });
  started = performance.now();
  video.src = src;
  return outcome;
}"""


def first_frame_ms(browser: Browser, link: Link, url: str) -> float | None:
    """ms from `video.src = url` to loadeddata in a fresh context (nothing cached), or None."""
    context = browser.new_context()
    try:
        page = link.page(context)
        loaded = page.evaluate(FIRST_FRAME, {"src": url, "timeoutMs": LOAD_TIMEOUT_S * 1000})
        return None if loaded is None else float(loaded)
    finally:
        context.close()


@dataclass(frozen=True)
class FirstFrames:
    link: Link
    faststart_ms: list[float | None]
    moov_at_end_ms: list[float | None]


def measure_first_frames(
    browser: Browser, link: Link, room: str, faststart: VideoProject, moov_at_end: VideoProject
) -> FirstFrames:
    faststart_ms: list[float | None] = []
    moov_at_end_ms: list[float | None] = []
    for number in range(1, CLIP_COUNT + 1):
        loads = [
            (faststart_ms, clip_url(room, clip_key(faststart, number))),
            (moov_at_end_ms, clip_url(room, clip_key(moov_at_end, number))),
        ]
        # Every other clip loads the other layout first, so neither gains from going first.
        for results, url in loads if number % 2 else reversed(loads):
            results.append(first_frame_ms(browser, link, url))
    return FirstFrames(link, faststart_ms, moov_at_end_ms)


# Media events do not bubble, but a capturing listener on the document sees them all, and
# it runs before room.js's own `ended` listener on the element moves to the next clip.
PLAYBACK_PROBE = """(() => {
  const probe = { started: null, ends: [], frames: [], stalls: [] };
  window.__playback = probe;
  const showing = () => [...document.querySelectorAll(".screen-video")]
    .find((video) => !video.classList.contains("standby"));
  document.addEventListener("playing", (event) => {
    if (probe.started !== null || !event.target.classList.contains("screen-video")) return;
    event.target.requestVideoFrameCallback((now, frame) => {
      probe.started = frame.expectedDisplayTime;
    });
  }, true);
  document.addEventListener("waiting", (event) => {
    const video = event.target;
    if (probe.started !== null && video.classList.contains("screen-video")) {
      probe.stalls.push(video.currentSrc);
    }
  }, true);
  document.addEventListener("ended", (event) => {
    const ended = event.target;
    if (!ended.classList.contains("screen-video")) return;
    const endedAt = performance.now();
    probe.ends.push({ src: ended.currentSrc, at: endedAt });
    setTimeout(() => {
      const next = showing();
      if (!next || next === ended) return;
      next.requestVideoFrameCallback((now, frame) =>
        probe.frames.push({ src: next.currentSrc, endedAt, shownAt: frame.expectedDisplayTime }),
      );
    });
  }, true);
})()"""


@dataclass(frozen=True)
class Playback:
    link: Link
    gaps_ms: list[float]
    wall_s: float | None
    content_s: float
    stalled_clips: list[int]
    problems: list[str]


def clip_number(url: str) -> int:
    """The clip number in a media URL (`.../clip-07/attempt-1.mp4` is 7), 0 if none."""
    found = re.search(r"/clip-(\d{2})/", url)
    return int(found[1]) if found else 0


def measure_playback(
    browser: Browser, link: Link, room: str, project: VideoProject, settings: Settings
) -> Playback:
    """Let the review page play all the clips at 2x, as a reviewer who only watches."""
    durations_s = [
        mp4.inspect(stored_clip(settings, project, number)).duration_s
        for number in range(1, CLIP_COUNT + 1)
    ]
    content_s = sum(durations_s) / SPEED
    context = browser.new_context(viewport=VIEWPORT)
    problems: list[str] = []
    try:
        context.add_init_script(script=PLAYBACK_PROBE)
        page = link.page(context)
        page.goto(review_page_url(room, project.project_id))
        try:
            page.wait_for_function(
                f"() => window.__playback.ends.length >= {CLIP_COUNT}",
                timeout=(content_s * 1.5 + 60) * 1000,
                polling=500,
            )
        except PlaywrightTimeout:
            problems.append("the page stopped before the last clip ended")
        probe: dict[str, Any] = page.evaluate("() => window.__playback")
    finally:
        context.close()
    gaps_ms = []
    for index, frame in enumerate(probe["frames"]):
        if clip_number(frame["src"]) != index + 2:
            problems.append(f"after clip {index + 1} the page showed {frame['src']}")
        gaps_ms.append(float(frame["shownAt"]) - float(frame["endedAt"]))
    if len(gaps_ms) != CLIP_COUNT - 1:
        problems.append(f"{len(gaps_ms)} of {CLIP_COUNT - 1} next clips were seen to start")
    ends = probe["ends"]
    wall_s = None
    if probe["started"] is not None and len(ends) == CLIP_COUNT:
        wall_s = (float(ends[-1]["at"]) - float(probe["started"])) / 1000
    stalled = [clip_number(src) for src in probe["stalls"]]
    return Playback(link, gaps_ms, wall_s, content_s, stalled, problems)


SHOWING_PLAYS = """() => {
  const video = [...document.querySelectorAll(".screen-video")]
    .find((one) => !one.classList.contains("standby"));
  return video !== undefined && !video.paused && video.currentTime > 0;
}"""
# Started by the key press itself (a capturing listener runs before room.js's), then
# sampled every animation frame until every tile plays.
WALL_PROBE = """() => {
  const probe = { asked: null, firstPlaying: null, allPlaying: null, playing: 0 };
  window.__wall = probe;
  document.addEventListener("keydown", (event) => {
    if (event.key !== "w" || probe.asked !== null) return;
    probe.asked = performance.now();
    const sample = () => {
      const videos = [...document.querySelectorAll(".wall-tile video")];
      probe.playing = videos.filter((video) => !video.paused && video.currentTime > 0).length;
      const now = performance.now();
      if (probe.playing > 0 && probe.firstPlaying === null) probe.firstPlaying = now;
      if (videos.length > 0 && probe.playing === videos.length) probe.allPlaying = now;
      else requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
  }, true);
}"""


@dataclass(frozen=True)
class Wall:
    link: Link
    all_playing_s: float | None
    first_playing_s: float | None
    playing: int


def measure_wall(browser: Browser, link: Link, room: str, project: VideoProject) -> Wall:
    """Open the review page, wait for clip 1 to play, key `w`, time the wall to all playing."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = link.page(context)
        page.goto(review_page_url(room, project.project_id))
        page.wait_for_function(SHOWING_PLAYS, timeout=LOAD_TIMEOUT_S * 1000)
        page.evaluate(WALL_PROBE)
        page.keyboard.press("w")
        # A wall that never fills up is reported by how many of its tiles did play.
        with suppress(PlaywrightTimeout):
            page.wait_for_function(
                "() => window.__wall.allPlaying !== null", timeout=WALL_TIMEOUT_S * 1000
            )
        probe: dict[str, Any] = page.evaluate("() => window.__wall")
    finally:
        context.close()

    def since_asked(moment: float | None) -> float | None:
        return None if moment is None else (float(moment) - float(probe["asked"])) / 1000

    return Wall(
        link,
        since_asked(probe["allPlaying"]),
        since_asked(probe["firstPlaying"]),
        int(probe["playing"]),
    )


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report_first_frames(runs: list[FirstFrames]) -> None:
    print("\n1. first frame: video.src to loadeddata, one fresh browser context per load")
    print(f"   {'link':<28}{'layout':<14}{'median':>9}{'max':>9}{'min':>9}")
    for run in runs:
        for layout, values in (
            ("faststart", run.faststart_ms),
            ("moov at end", run.moov_at_end_ms),
        ):
            loaded = [value for value in values if value is not None]
            if not loaded:
                print(f"   {run.link.describe():<28}{layout:<14}   never loaded")
                continue
            never = "" if len(loaded) == CLIP_COUNT else f"  ({CLIP_COUNT - len(loaded)} never)"
            print(
                f"   {run.link.describe():<28}{layout:<14}{statistics.median(loaded):>6.0f} ms"
                f"{max(loaded):>6.0f} ms{min(loaded):>6.0f} ms{never}"
            )
    for run in runs:
        within = sum(
            1 for fast in run.faststart_ms if fast is not None and fast <= FIRST_FRAME_GOAL_S * 1000
        )
        print(
            f"   {run.link.describe()}: faststart within {FIRST_FRAME_GOAL_S:g} s "
            f"{within}/{CLIP_COUNT}   goal: all  {verdict(within == CLIP_COUNT)}"
        )
        ratios = [
            slow / fast
            for fast, slow in zip(run.faststart_ms, run.moov_at_end_ms, strict=True)
            if fast is not None and slow is not None
        ]
        if ratios:
            median_ratio = statistics.median(ratios)
            print(
                f"   {run.link.describe()}: moov at end / faststart per clip, median "
                f"{median_ratio:.2f}x, lowest {min(ratios):.2f}x   goal: median >= "
                f"{MOOV_AT_END_GOAL_RATIO:g}x  {verdict(median_ratio >= MOOV_AT_END_GOAL_RATIO)}"
            )


def report_playback(playback: Playback) -> None:
    print(
        f"\n2. {CLIP_COUNT} clips at {SPEED:g}x in the review page's player, "
        f"{playback.link.describe()}"
    )
    for problem in playback.problems:
        print(f"   problem: {problem}")
    gaps = playback.gaps_ms
    if gaps:
        every_gap_met = len(gaps) == CLIP_COUNT - 1 and max(gaps) < GAP_GOAL_MS
        print(
            f"   gap, ended -> next clip's first frame shown: median "
            f"{statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms over {len(gaps)} gaps"
            f"   goal: every gap < {GAP_GOAL_MS:g} ms  {verdict(every_gap_met)}"
        )
    goal_s = playback.content_s + PLAYBACK_SLACK_GOAL_S
    if playback.wall_s is None:
        print(f"   wall time not measured   goal: <= {goal_s:.1f} s  {verdict(False)}")
    else:
        print(
            f"   wall time {playback.wall_s:.2f} s for {playback.content_s:.2f} s of clips at "
            f"{SPEED:g}x ({playback.wall_s / playback.content_s:.4f}x)"
            f"   goal: <= {goal_s:.1f} s  {verdict(playback.wall_s <= goal_s)}"
        )
    stalled = playback.stalled_clips
    where = f" (clips {', '.join(map(str, stalled))})" if stalled else ""
    print(f"   stalls (waiting events) while playing: {len(stalled)}{where}")


def report_walls(walls: list[Wall]) -> None:
    print(f"\n3. wall of {CLIP_COUNT} proxies: key w with clip 1 playing, until all play")
    for wall in walls:
        if wall.all_playing_s is None:
            print(
                f"   {wall.link.describe():<28}{wall.playing}/{CLIP_COUNT} playing after "
                f"{WALL_TIMEOUT_S:g} s   goal: all within {WALL_GOAL_S:g} s  {verdict(False)}"
            )
            continue
        first = "-" if wall.first_playing_s is None else f"{wall.first_playing_s:.2f} s"
        print(
            f"   {wall.link.describe():<28}all playing after {wall.all_playing_s:.2f} s "
            f"(first tile {first})   goal: <= {WALL_GOAL_S:g} s  "
            f"{verdict(wall.all_playing_s <= WALL_GOAL_S)}"
        )


def report_previews(generation_s: dict[int, float], previews_s: dict[int, float]) -> None:
    fractions = [previews_s[number] / generation_s[number] for number in generation_s]
    print("\n4. proxy + motion strip (make_previews) against the local generator, per clip")
    print(f"   {'':<16}{'median':>8}{'max':>8}{'min':>8}")
    for label, values in (
        ("generation", list(generation_s.values())),
        ("proxy + strip", list(previews_s.values())),
    ):
        print(
            f"   {label:<16}{statistics.median(values):>6.2f} s{max(values):>6.2f} s"
            f"{min(values):>6.2f} s"
        )
    median_fraction = statistics.median(fractions)
    print(
        f"   fraction of generation: median {median_fraction:.1%}, max {max(fractions):.1%}"
        f"   goal: median < {PREVIEW_GOAL_FRACTION:.0%}  "
        f"{verdict(median_fraction < PREVIEW_GOAL_FRACTION)}"
    )


def describe_sizes(settings: Settings, project: VideoProject) -> str:
    clips = [stored_clip(settings, project, number) for number in range(1, CLIP_COUNT + 1)]
    clip_mb = [clip.stat().st_size / 1e6 for clip in clips]
    proxy_mb = [
        (settings.clips_dir / clip_key(project, number).proxy_key).stat().st_size / 1e6
        for number in range(1, CLIP_COUNT + 1)
    ]
    return (
        f"clips {min(clip_mb):.2f}-{max(clip_mb):.2f} MB (median {statistics.median(clip_mb):.2f}),"
        f" proxies {min(proxy_mb):.2f}-{max(proxy_mb):.2f} MB (median "
        f"{statistics.median(proxy_mb):.2f}, {sum(proxy_mb):.1f} MB for the wall)"
    )


def main() -> None:
    """Make the clips, serve them, watch them in Chromium, print every measure and goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument(
        "--texture", type=float, default=0.6, help="pattern over the stills, 0 (none) to 1"
    )
    parser.add_argument("--mbit", type=float, default=20.0, help="emulated download Mbit/s")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="emulated latency")
    parser.add_argument(
        "--skip-playback", action="store_true", help="skip measure 2 (18 clips at 2x)"
    )
    arguments = parser.parse_args()
    link = Link(arguments.mbit, arguments.latency_ms)
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clipgate-bench-room.") as scratch:
        folder = Path(scratch)
        settings = bench_settings(folder / "home", arguments)
        print(
            f"making {CLIP_COUNT} clips of {settings.clip_seconds:g} s {settings.clip_width}x"
            f"{settings.clip_height} at {settings.clip_fps} fps with the local generator, "
            "one at a time...",
            flush=True,
        )
        faststart = textured_project(folder / "stills", settings, arguments.texture)
        moov_at_end = faststart.model_copy(update={"project_id": "room-moov-at-end"})
        recorded = RecordingGenerator(
            LocalMotionGenerator(
                settings.clip_seconds, settings.clip_width, settings.clip_height, settings.clip_fps
            ),
            kept=folder / "as-generated",
        )
        recorded.kept.mkdir()
        make_round(settings, faststart, recorded)
        previews_s = preview_seconds(settings, faststart, folder / "previews")
        make_round(settings, moov_at_end, ReplayGenerator(recorded))
        put_moov_at_end(settings, moov_at_end, recorded)
        sizes = describe_sizes(settings, faststart)

        room = start_room(settings, host="127.0.0.1", port=0)
        try:
            with loopback_chromium() as browser:
                print("measuring first frames...", flush=True)
                first_frames = [
                    measure_first_frames(browser, each, room.url, faststart, moov_at_end)
                    for each in (link, LOOPBACK)
                ]
                print("measuring the wall...", flush=True)
                walls = [
                    measure_wall(browser, each, room.url, faststart) for each in (link, LOOPBACK)
                ]
                playback = None
                if not arguments.skip_playback:
                    print("measuring playback at 2x...", flush=True)
                    playback = measure_playback(browser, link, room.url, faststart, settings)
        finally:
            room.stop()
    print(
        f"\n{CLIP_COUNT} clips of {settings.clip_seconds:g} s {settings.clip_width}x"
        f"{settings.clip_height} at {settings.clip_fps} fps, texture {arguments.texture:g}: {sizes}"
    )
    # Chromium decodes in software here, so other work on the machine shows in every figure.
    print(
        f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"on {os.cpu_count()} CPUs"
    )
    report_first_frames(first_frames)
    if playback is not None:
        report_playback(playback)
    report_walls(walls)
    report_previews(recorded.seconds, previews_s)


if __name__ == "__main__":
    main()
