"""How close 18 Kling clips come to the concurrency floor, through the local Kling.

Every task takes a fixed latency L on the local Kling (tests/fakes/kling_server.py),
which allows C tasks at a time; KlingGenerator runs from a pool of C threads. No schedule
can beat the floor ceil(18 / C) x L, so the wall time is printed beside it, with the
ratio and the goal (1.1 x floor + 3 s), for each C.

Run from the repository root:

    .venv/bin/python -m bench.generation                 # L = 1 s, C = 1, 3, 5, 6
    .venv/bin/python -m bench.generation --latency 2 --concurrency 2 4
"""

from __future__ import annotations

import argparse
import math
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
from pydantic import SecretStr

from clipgate.generators import GenerationResult
from clipgate.generators.kling import KlingConfig, KlingGenerator
from clipgate.models import CLIP_COUNT, ClipKey, ClipSpec
from tests.fakes.kling_server import KlingFake


def make_still(folder: Path) -> Path:
    still = folder / "composite.png"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "color=c=teal:s=640x360", "-frames:v", "1", str(still)),
        ],
        check=True,
    )
    return still


def run_once(latency_s: float, concurrency: int, still: Path, folder: Path) -> tuple[float, int]:
    """Wall time of 18 clips at this latency and concurrency, and the peak tasks in flight."""
    with KlingFake(task_seconds=latency_s, concurrency_limit=concurrency) as kling:
        config = KlingConfig(
            access_key=SecretStr(kling.access_key),
            secret_key=SecretStr(kling.secret_key),
            base_url=kling.base_url,
            # Polling a few times a second is to a 1 s task what Kling's default 5-20 s
            # polling is to a 2-5 minute one.
            poll_initial_s=min(0.05, latency_s / 10),
            poll_max_s=min(0.1, latency_s / 5),
            retry_initial_s=0.05,
            retry_max_s=0.2,
        )
        generator = KlingGenerator(config)
        clips = [
            (
                ClipKey(project_id="bench", channel="bench", number=number, attempt=1),
                ClipSpec(number=number, composite_image=still, motion_prompt="slow zoom in"),
            )
            for number in range(1, CLIP_COUNT + 1)
        ]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(
                pool.map(
                    lambda clip: generator.generate(
                        clip[0], clip[1], folder / f"c{concurrency}" / clip[0].object_key
                    ),
                    clips,
                )
            )
        wall = time.perf_counter() - started
        generator.close()
    if not all(isinstance(result, GenerationResult) for result in results):
        raise RuntimeError("a clip was not made")
    if len(kling.submissions) != CLIP_COUNT:
        raise RuntimeError(f"{len(kling.submissions)} tasks paid for {CLIP_COUNT} clips")
    return wall, kling.peak_in_flight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per task (L)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 3, 5, 6], help="values of C"
    )
    arguments = parser.parse_args()
    latency = arguments.latency
    print(f"{CLIP_COUNT} clips through the local Kling, L = {latency:g} s per task")
    print(f"{'C':>3} {'floor s':>8} {'wall s':>8} {'ratio':>6} {'goal s':>7} {'peak':>5}  verdict")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        still = make_still(folder)
        for concurrency in arguments.concurrency:
            floor = math.ceil(CLIP_COUNT / concurrency) * latency
            goal = 1.1 * floor + 3.0
            wall, peak = run_once(latency, concurrency, still, folder)
            verdict = "within goal" if wall <= goal else "OVER GOAL"
            print(
                f"{concurrency:>3} {floor:>8.2f} {wall:>8.2f} {wall / floor:>6.3f} "
                f"{goal:>7.2f} {peak:>5}  {verdict}"
            )


if __name__ == "__main__":
    main()
