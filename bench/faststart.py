"""Faststart benchmark: 18 clips of 10 s 1080p (~15 MB each, moov at end), side by side.

Run from the project root:

    .venv/bin/python -m bench.faststart [--rounds 5] [--cache DIR]

The first run encodes one clip with the wheel's ffmpeg (testsrc2 at 12 Mbit/s) into the
cache folder and copies it to 18 clip files; later runs reuse them. Every measure starts
from fresh copies of those clips, written back to disk (sync) before timing, and runs
twice: "warm", the clips in the page cache (as right after they were made), and "cold",
the clips evicted from it (posix_fadvise DONTNEED; as for clips that sat on disk).
Insert-range itself costs almost nothing, but the kernel drops the file's cached pages
when it shifts them, which is most of the warm figure.

Measured, in this one process:
- in-process `make_faststart` on the 18 clips (insert-range) against one `cp` of them;
- the copy path (`relocate_moov(method="copy")`, each file fsynced) against `cp`, and
  against `cp` followed by `sync`, since cp alone does not make its copies durable;
- `python -m clipgate.mp4_cli mp4 faststart` (one process, 18 files) against one
  `ffmpeg -c copy -movflags +faststart` per clip;
- bytes written per clip by the insert-range faststart, and bytes read per clip by
  `inspect`, from /proc/self/io (wchar, rchar).

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


def fresh_copies(clips: list[Path], folder: Path, warm: bool) -> list[Path]:
    """Copies of the clips in an empty `folder`, on disk, cached or not."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copies = [folder / clip.name for clip in clips]
    for clip, copy in zip(clips, copies, strict=True):
        shutil.copyfile(clip, copy)
    os.sync()
    set_cache(copies, warm)
    return copies


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


def run_cp(clips: list[Path], folder: Path, warm: bool, then_sync: bool) -> float:
    """Seconds for one `cp` of every clip into an empty folder (and a `sync` after it)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    set_cache(clips, warm)

    def copy() -> None:
        subprocess.run(["cp", *map(str, clips), str(folder)], check=True)
        if then_sync:
            subprocess.run(["sync"], check=True)

    return timed(copy)


def run_ffmpeg_faststart(clips: list[Path], folder: Path, warm: bool) -> float:
    """Seconds for one ffmpeg remux with +faststart per clip."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    set_cache(clips, warm)

    def remux() -> None:
        for clip in clips:
            subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
                 str(folder / clip.name)],
                check=True,
            )  # fmt: skip

    return timed(remux)


def one_round(clips: list[Path], work: Path, warm: bool) -> dict[str, float]:
    """Every measure once, each on fresh copies of the clips, cached or not."""
    figures: dict[str, float] = {}
    copies = fresh_copies(clips, work / "insert", warm)
    wchar = proc_io("wchar")
    results: list[mp4.FaststartResult] = []
    figures["insert_s"] = timed(lambda: results.extend(map(mp4.make_faststart, copies)))
    figures["insert_wchar_per_clip"] = (proc_io("wchar") - wchar) / CLIPS
    if {result.method for result in results} != {"insert-range"}:
        sys.exit(f"insert-range did not run: {sorted({r.method for r in results})}")
    figures["insert_written_per_clip"] = statistics.mean(r.bytes_written for r in results)

    set_cache(copies, warm)
    rchar = proc_io("rchar")
    for copy in copies:
        mp4.inspect(copy)
    figures["check_read_per_clip"] = (proc_io("rchar") - rchar) / CLIPS

    copies = fresh_copies(clips, work / "copy", warm)
    figures["copy_s"] = timed(lambda: [mp4.relocate_moov(c, method="copy") for c in copies])

    figures["cp_s"] = run_cp(clips, work / "cp", warm, then_sync=False)
    figures["cp_sync_s"] = run_cp(clips, work / "cp", warm, then_sync=True)

    copies = fresh_copies(clips, work / "cli", warm)
    command = [sys.executable, "-m", "clipgate.mp4_cli", "mp4", "faststart", *map(str, copies)]
    figures["cli_s"] = timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
    figures["ffmpeg_s"] = run_ffmpeg_faststart(clips, work / "ffmpeg", warm)
    return figures


def report(label: str, rounds: list[dict[str, float]], clip_bytes: int) -> None:
    """Print the medians of one cache state and the ratios the goals are about."""
    median = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    print(f"\n{label}: medians of {len(rounds)} rounds, all {CLIPS} clips")
    print(f"  faststart in-process, insert-range  {median['insert_s'] * 1000:9.1f} ms")
    print(f"  faststart in-process, copy path     {median['copy_s'] * 1000:9.1f} ms")
    print(f"  cp                                  {median['cp_s'] * 1000:9.1f} ms")
    print(f"  cp + sync                           {median['cp_sync_s'] * 1000:9.1f} ms")
    print(f"  mp4 faststart CLI (1 process)       {median['cli_s'] * 1000:9.1f} ms")
    print(f"  ffmpeg +faststart, 1 run per clip   {median['ffmpeg_s'] * 1000:9.1f} ms")
    print(f"  cp / insert-range              {median['cp_s'] / median['insert_s']:8.1f}x"
          "  (goal >= 5x)")  # fmt: skip
    print(f"  (cp + sync) / insert-range     {median['cp_sync_s'] / median['insert_s']:8.1f}x")
    print(f"  copy path / cp                 {median['copy_s'] / median['cp_s']:8.2f}x"
          "  (goal <= 2x)")  # fmt: skip
    print(f"  copy path / (cp + sync)        {median['copy_s'] / median['cp_sync_s']:8.2f}x")
    print(f"  ffmpeg per clip / CLI          {median['ffmpeg_s'] / median['cli_s']:8.1f}x"
          "  (goal >= 10x)")  # fmt: skip
    written = median["insert_written_per_clip"]
    wchar = median["insert_wchar_per_clip"]
    share = written / clip_bytes
    print(f"  written per clip, insert-range {written:8.0f} B = {share:.4%} of a clip"
          f" (write calls: {wchar:.0f} B; goal < 1%)")  # fmt: skip
    read = median["check_read_per_clip"]
    print(
        f"  read per clip by check         {read:8.0f} B = {read / 1024:.1f} KiB (goal <= 64 KiB)"
    )


def main() -> None:
    """Run the rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "clipgate-bench-faststart"
    )
    args = parser.parse_args()
    clips = encode_clips(args.cache)
    work = args.cache / "work"
    warm_rounds: list[dict[str, float]] = []
    cold_rounds: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        print(f"round {number}/{args.rounds}...", flush=True)
        warm_rounds.append(one_round(clips, work, warm=True))
        cold_rounds.append(one_round(clips, work, warm=False))
    shutil.rmtree(work, ignore_errors=True)
    clip_bytes = clips[0].stat().st_size
    print(f"\n{CLIPS} clips of {clip_bytes / 1e6:.1f} MB each, 10 s 1080p, moov at end")
    report("warm (clips in the page cache)", warm_rounds, clip_bytes)
    report("cold (clips evicted from the page cache)", cold_rounds, clip_bytes)


if __name__ == "__main__":
    main()
