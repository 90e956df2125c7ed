"""Faststart benchmark: 18 clips of 10 s 1080p (~16 MB each, moov at end), side by side.

Run from the project root:

    .venv/bin/python -m bench.faststart [--rounds 5] [--cache DIR]

The first run encodes one clip with the wheel's ffmpeg (testsrc2 at 12 Mbit/s) into the
cache folder, and a faststart remux of it; later runs reuse them. Every measure starts
from fresh copies of the clips, in one of three states:

- fresh: written just before timing and never synced, so dirty in the page cache, as an
  encode or a download leaves a clip (the dirt of the measures before is synced away
  first, so that it is not written back during the timing);
- warm: written back to disk (sync) and in the page cache;
- cold: written back and evicted from the page cache (posix_fadvise DONTNEED), as for
  clips that sat on disk.

Measured in each state, in this one process:
- in-process `make_faststart` on the 18 clips, which chooses for itself: a copy without
  fsync for fresh clips, insert-range for clips on disk; for fresh clips also insert-range
  forced, which makes the kernel write each clip back first;
- `cp` of the same files into an empty folder; for clips on disk also `cp` then `sync`,
  and the durable copy (`relocate_moov(method="copy")`, each file fsynced);
- the `clipgate mp4 faststart` entry point (one process, 18 files, its bytecode cached
  as for an installed command) against one `ffmpeg -c copy -movflags +faststart` per clip;
- bytes written per clip by the faststart, and bytes read per clip by `inspect`;
- `make_faststart` on 18 clips already faststart, as the local generator writes them.

It prints the median of each measure over the rounds and the ratios between them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clipgate import mp4
from clipgate.ffmpeg import ffmpeg_exe

CLIPS = 18
ENTRY_POINT = Path(sys.executable).with_name("clipgate")
STATES = ("fresh", "warm", "cold")


def encode_clips(cache: Path) -> list[Path]:
    """The 18 moov-at-end clips, encoded once and kept in `cache`."""
    clips = [cache / f"clip-{number:02d}.mp4" for number in range(1, CLIPS + 1)]
    if all(clip.is_file() for clip in clips):
        return clips
    cache.mkdir(parents=True, exist_ok=True)
    master = cache / "master.mp4"
    print(f"encoding a 10 s 1080p clip into {cache} (once)...", flush=True)
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=10",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "12M", "-minrate", "12M", "-maxrate", "12M", "-bufsize", "24M",
            str(master),
        ],
        check=True,
    )  # fmt: skip
    for clip in clips:
        shutil.copyfile(master, clip)
    master.unlink()
    return clips


def faststart_clip(cache: Path, clip: Path) -> Path:
    """`clip` remuxed with moov first, made once and kept in `cache`."""
    fast = cache / "faststart.mp4"
    if not fast.is_file():
        remux(clip, fast)
    return fast


def remux(clip: Path, output: Path) -> None:
    """One `ffmpeg -c copy -movflags +faststart`."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(output)],
        check=True,
    )  # fmt: skip


def command_environment(cache: Path) -> dict[str, str]:
    """The environment to time Python commands in: bytecode cached under `cache`.

    An installed command compiles its modules once; where PYTHONDONTWRITEBYTECODE is set
    every run compiles them again, which is no cost of the command.
    """
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return environment


def set_cache(files: list[Path], warm: bool) -> None:
    """Bring `files` into the page cache, or evict them (they are clean after a sync)."""
    for path in files:
        handle = os.open(path, os.O_RDONLY)
        try:
            if warm:
                while os.read(handle, 1 << 20):
                    pass
            else:
                os.posix_fadvise(handle, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(handle)


def copies_in(
    sources: list[Path], folder: Path, state: str, names: list[str] | None = None
) -> list[Path]:
    """Copies of `sources` (named `names`) in an empty `folder`, fresh or on disk."""
    empty_folder(folder)
    os.sync()
    copies = [folder / name for name in names or [source.name for source in sources]]
    for source, copy in zip(sources, copies, strict=True):
        shutil.copyfile(source, copy)
    if state != "fresh":
        os.sync()
        set_cache(copies, warm=state == "warm")
    return copies


def empty_folder(folder: Path) -> Path:
    """`folder`, emptied."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def proc_io(field: str) -> int:
    """A counter from /proc/self/io (rchar, wchar...)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        name, value = line.split(":")
        if name == field:
            return int(value)
    raise KeyError(field)


def faststart_all(
    copies: list[Path], method: mp4.MethodChoice, expected: str
) -> tuple[float, float]:
    """Seconds for `relocate_moov` on every copy, and the mean bytes written per clip."""
    results: list[mp4.FaststartResult] = []
    seconds = timed(lambda: results.extend(mp4.relocate_moov(c, method=method) for c in copies))
    methods = {result.method for result in results}
    if methods != {expected}:
        sys.exit(f"expected {expected} on every clip, got {sorted(methods)}")
    return seconds, statistics.mean(result.bytes_written for result in results)


def one_round(
    clips: list[Path], fast: Path, work: Path, state: str, environment: dict[str, str]
) -> dict[str, float]:
    """Every measure once in one state, each on its own fresh copies of the clips."""
    fresh = state == "fresh"
    ours = "copy-unsynced" if fresh else "insert-range"
    figures: dict[str, float] = {}
    copies = copies_in(clips, work / "ours", state)
    wchar = proc_io("wchar")
    figures["ours_s"], figures["ours_written_per_clip"] = faststart_all(copies, "auto", ours)
    figures["ours_wchar_per_clip"] = (proc_io("wchar") - wchar) / CLIPS
    if fresh:
        copies = copies_in(clips, work / "insert", state)
        figures["insert_s"], _ = faststart_all(copies, "insert-range", "insert-range")
    else:
        rchar = proc_io("rchar")
        for copy in copies:
            mp4.inspect(copy)
        figures["check_read_per_clip"] = (proc_io("rchar") - rchar) / CLIPS
        copies = copies_in(clips, work / "copy", state)
        figures["copy_s"], _ = faststart_all(copies, "copy", "copy")

    figures["cp_s"] = run_cp(clips, work, state, then_sync=False)
    if not fresh:
        figures["cp_sync_s"] = run_cp(clips, work, state, then_sync=True)

    copies = copies_in(clips, work / "cli", state)
    command = [str(ENTRY_POINT), "mp4", "faststart", *map(str, copies)]
    figures["cli_s"] = timed(
        lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
    )
    figures["ffmpeg_s"] = run_ffmpeg(clips, work, state)

    names = [clip.name for clip in clips]
    copies = copies_in([fast] * CLIPS, work / "fast", state, names)
    figures["already_s"], figures["already_written_per_clip"] = faststart_all(
        copies, "auto", "none"
    )
    return figures


def run_ffmpeg(clips: list[Path], work: Path, state: str) -> float:
    """Seconds for one ffmpeg remux with +faststart per copy of a clip."""
    sources = copies_in(clips, work / "sources", state)
    target = empty_folder(work / "ffmpeg")

    def remux_each() -> None:
        for source in sources:
            remux(source, target / source.name)

    return timed(remux_each)


def run_cp(clips: list[Path], work: Path, state: str, then_sync: bool) -> float:
    """Seconds for one `cp` of copies of the clips into an empty folder (and a `sync`)."""
    sources = copies_in(clips, work / "sources", state)
    target = empty_folder(work / "cp")

    def copy() -> None:
        subprocess.run(["cp", *map(str, sources), str(target)], check=True)
        if then_sync:
            os.sync()

    return timed(copy)


def ms(seconds: float) -> str:
    """Seconds as milliseconds, right-aligned."""
    return f"{seconds * 1000:9.1f} ms"


def report(state: str, rounds: list[dict[str, float]], clip_bytes: int) -> None:
    """Print the medians of one state and the ratios the goals are about."""
    median = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    label = {
        "fresh": "fresh (written just now, dirty in the page cache, never synced)",
        "warm": "warm (on disk and in the page cache)",
        "cold": "cold (on disk, evicted from the page cache)",
    }[state]
    ours = "copy-unsynced" if state == "fresh" else "insert-range"
    print(f"\n{label}: medians of {len(rounds)} rounds, all {CLIPS} clips")
    print(f"  make_faststart in-process ({ours:13}) {ms(median['ours_s'])}")
    if state == "fresh":
        print(f"  insert-range forced in-process        {ms(median['insert_s'])}")
    else:
        print(f"  durable copy in-process (fsync each)  {ms(median['copy_s'])}")
    print(f"  cp                                    {ms(median['cp_s'])}")
    if state != "fresh":
        print(f"  cp + sync                             {ms(median['cp_sync_s'])}")
    print(f"  clipgate mp4 faststart (1 process)    {ms(median['cli_s'])}")
    print(f"  ffmpeg +faststart, 1 run per clip     {ms(median['ffmpeg_s'])}")
    print(f"  make_faststart, clips already fast    {ms(median['already_s'])}"
          f"  ({median['already_written_per_clip']:.0f} B written per clip)")  # fmt: skip
    ratio = median["ffmpeg_s"] / median["cli_s"]
    print(f"  ffmpeg per clip / clipgate mp4 faststart  {ratio:7.2f}x  (goal >= 5x)")
    ratio = median["cli_s"] / median["cp_s"]
    goal = "  (goal <= 1.5x)" if state == "fresh" else ""
    print(f"  clipgate mp4 faststart / cp               {ratio:7.2f}x{goal}")
    print(f"  in-process / cp                           {median['ours_s'] / median['cp_s']:7.2f}x")
    if state == "fresh":
        ratio = median["insert_s"] / median["ours_s"]
        print(f"  insert-range forced / copy-unsynced       {ratio:7.2f}x")
    else:
        ratio = median["copy_s"] / median["cp_sync_s"]
        print(f"  durable copy / (cp + sync)                {ratio:7.2f}x")
    written = median["ours_written_per_clip"]
    print(f"  written per clip, {ours:13}           {written:10.0f} B = {written / clip_bytes:.4%}"
          f" of a clip (write calls: {median['ours_wchar_per_clip']:.0f} B)")  # fmt: skip
    if state != "fresh":
        read = median["check_read_per_clip"]
        print(f"  read per clip by check                 {read:10.0f} B = {read / 1024:.1f} KiB")


def main() -> None:
    """Run the rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "clipgate-bench-faststart"
    )
    args = parser.parse_args()
    if not ENTRY_POINT.is_file():
        sys.exit(f"no {ENTRY_POINT}: install the project first (uv sync)")
    clips = encode_clips(args.cache)
    fast = faststart_clip(args.cache, clips[0])
    work = args.cache / "work"
    environment = command_environment(args.cache)
    subprocess.run([str(ENTRY_POINT), "mp4", "check", str(fast)], check=True, env=environment)
    rounds: dict[str, list[dict[str, float]]] = {state: [] for state in STATES}
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}...", flush=True)
        for state in STATES:
            rounds[state].append(one_round(clips, fast, work, state, environment))
    shutil.rmtree(work, ignore_errors=True)
    clip_bytes = clips[0].stat().st_size
    print(f"\n{CLIPS} clips of {clip_bytes / 1e6:.1f} MB each, 10 s 1080p, moov at end")
    for state in STATES:
        report(state, rounds[state], clip_bytes)


if __name__ == "__main__":
    main()
