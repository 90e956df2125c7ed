"""Start-up of the `clipgate` command line: `mp4 check` on 18 clips, side by side.

Run from the project root:

    .venv/bin/python -m bench.cli_startup [--rounds 15] [--cache DIR]

It checks the 18 clips of bench/faststart.py (encoded there once, in the same cache).
Each round times, each in a process of its own and in turn, with bytecode cached as for
an installed command:
- `clipgate mp4 check` on the 18 clips, through the installed entry point (goal: 0.12 s),
  and the same without the bench's bytecode cache (PYTHONDONTWRITEBYTECODE=1), so that
  modules without a .pyc of their own, as clipgate's in a fresh checkout, compile each time;
- the same command with `clipgate.models` imported first, as every `clipgate` command
  did before through `clipgate.feedback` (pydantic, SQLModel, SQLAlchemy);
- `clipgate parse-feedback` on a note;
- `python -c pass`: the interpreter alone, the floor under any Python command.

It prints the median of each over the rounds and the ratios between them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.faststart import ENTRY_POINT, command_environment, encode_clips

GOAL_S = 0.12
RUN_AS_BEFORE = "import sys, clipgate.models; from clipgate.cli import main; sys.exit(main())"


def seconds_to_run(command: list[str], environment: dict[str, str]) -> float:
    """Wall seconds for one run of `command`, which must succeed."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
    return time.perf_counter() - started


def main() -> None:
    """Run the rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "clipgate-bench-faststart"
    )
    args = parser.parse_args()
    if not ENTRY_POINT.is_file():
        sys.exit(f"no {ENTRY_POINT}: install the project first (uv sync)")
    clips = [str(clip) for clip in encode_clips(args.cache)]
    cached = command_environment(args.cache)
    compiling = {**cached, "PYTHONDONTWRITEBYTECODE": "1"}
    del compiling["PYTHONPYCACHEPREFIX"]
    commands = {
        "check": [str(ENTRY_POINT), "mp4", "check", *clips],
        "check_compiling": [str(ENTRY_POINT), "mp4", "check", *clips],
        "check_as_before": [sys.executable, "-c", RUN_AS_BEFORE, "mp4", "check", *clips],
        "parse_feedback": [str(ENTRY_POINT), "parse-feedback", "Bad motion on clips 5-8"],
        "python": [sys.executable, "-c", "pass"],
    }
    environments = {name: compiling if name == "check_compiling" else cached for name in commands}
    for name, command in commands.items():
        seconds_to_run(command, environments[name])
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            times[name].append(seconds_to_run(command, environments[name]))
    median = {name: statistics.median(values) for name, values in times.items()}

    print(f"medians of {args.rounds} rounds, each command in a process of its own")
    print(f"  clipgate mp4 check, {len(clips)} clips          {ms(median['check'])}"
          f"  (goal < {ms(GOAL_S).strip()})")  # fmt: skip
    print(f"  the same, without the bytecode cache       {ms(median['check_compiling'])}")
    print(f"  the same, importing clipgate.models first  {ms(median['check_as_before'])}")
    print(f"  clipgate parse-feedback                    {ms(median['parse_feedback'])}")
    print(f"  python -c pass (the floor)                 {ms(median['python'])}")
    ratio = median["check_as_before"] / median["check"]
    print(f"  as before / mp4 check                      {ratio:7.2f}x")
    ratio = median["check"] / median["python"]
    print(f"  mp4 check / floor                          {ratio:7.2f}x")
    print(f"  mp4 check above the floor                  {ms(median['check'] - median['python'])}")


def ms(seconds: float) -> str:
    """Seconds as milliseconds, right-aligned."""
    return f"{seconds * 1000:7.1f} ms"


if __name__ == "__main__":
    main()
