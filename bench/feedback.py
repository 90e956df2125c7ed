"""How the note reader's time grows with the note, on hostile notes of 1,000 and 10,000 chars.

Run from the project root:

    .venv/bin/python -m bench.feedback [--rounds 5]

Each hostile piece of tests/test_feedback_properties.py (the regular-expression reader
this one replaced backtracked on such notes: 2.4 s on 200 spaces, 91 s on 500) is
repeated after each prefix into a note of 1,000 and one of 10,000 characters (the
limit). For every note it measures the CPU time `parse_clip_numbers` takes (clips or a
FeedbackError), and beside it one `re.findall(r"\\d+")` over the same note: a single
pass of the regular-expression engine, the yardstick. Medians over the rounds.

It prints the slowest note at the limit (goal: under 0.5 s), the largest growth from
1,000 to 10,000 characters (about 10x when time is linear in the length, 100x when
quadratic), ours against the yardstick, and the time to refuse a note of 1,000,000
characters (goal: under 0.05 s, as it is refused before it is read).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from contextlib import suppress

from clipgate.errors import FeedbackError
from clipgate.feedback import MAX_NOTE_LENGTH, parse_clip_numbers
from tests.test_feedback_properties import HOSTILE_UNITS

PREFIXES = ["", "clip", "clips No.", "#", ":", "Regenerate: ", "5"]
SHORT = 1_000
DIGITS = re.compile(r"\d+")


def cpu_seconds(action: Callable[[], object]) -> float:
    """CPU seconds one call of `action` takes, from enough calls to measure."""
    calls = 1
    while True:
        started = time.process_time()
        for _ in range(calls):
            action()
        spent = time.process_time() - started
        if spent >= 0.02:
            return spent / calls
        calls *= 4


def read(text: str) -> None:
    """Read a note as the gate does: clips, or a FeedbackError."""
    with suppress(FeedbackError):
        parse_clip_numbers(text)


def note(prefix: str, unit: str, length: int) -> str:
    """`prefix` and `unit` repeated, at most `length` characters."""
    return prefix + unit * ((length - len(prefix)) // len(unit))


def measure(prefix: str, unit: str, rounds: int) -> tuple[str, float, float, float]:
    """The note, and medians of: reading it short, reading it full, one re.findall on it full."""
    short, full = note(prefix, unit, SHORT), note(prefix, unit, MAX_NOTE_LENGTH)
    times = [
        (
            cpu_seconds(lambda: read(short)),
            cpu_seconds(lambda: read(full)),
            cpu_seconds(lambda: DIGITS.findall(full)),
        )
        for _ in range(rounds)
    ]
    return (
        repr(prefix + unit),
        statistics.median(t[0] for t in times),
        statistics.median(t[1] for t in times),
        statistics.median(t[2] for t in times),
    )


def main() -> None:
    """Measure every hostile note at both lengths and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(prefix, unit, args.rounds) for prefix in PREFIXES for unit in HOSTILE_UNITS]
    over = "clip 5 " * (1_000_000 // 7 + 1)
    refuse = statistics.median(cpu_seconds(lambda: read(over)) for _ in range(args.rounds))

    slowest = max(rows, key=lambda row: row[2])
    steepest = max(rows, key=lambda row: row[2] / row[1])
    widest = max(rows, key=lambda row: row[2] / row[3])
    print(f"{len(rows)} hostile notes, medians of {args.rounds} rounds, CPU time")
    print(f"  slowest at {MAX_NOTE_LENGTH:,} chars       {slowest[2] * 1000:8.2f} ms  "
          f"{slowest[0]} (goal < 500 ms)")  # fmt: skip
    print(f"  median at {MAX_NOTE_LENGTH:,} chars        "
          f"{statistics.median(row[2] for row in rows) * 1000:8.2f} ms")  # fmt: skip
    print(f"  largest growth {SHORT:,} -> {MAX_NOTE_LENGTH:,}  {steepest[2] / steepest[1]:8.1f}x  "
          f"{steepest[0]} (linear: about 10x)")  # fmt: skip
    print(f"  largest ours / one re.findall     {widest[2] / widest[3]:8.1f}x  {widest[0]}")
    median_ratio = statistics.median(row[2] / row[3] for row in rows)
    print(f"  median ours / one re.findall      {median_ratio:8.1f}x")
    print(f"  refusing 1,000,000 chars          {refuse * 1000:8.3f} ms  (goal < 50 ms)")


if __name__ == "__main__":
    main()
