"""Property tests: the note reader is fast on hostile notes and fails only with FeedbackError."""

from __future__ import annotations

import time
from contextlib import suppress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipgate.errors import FeedbackError
from clipgate.feedback import MAX_NOTE_LENGTH, parse_clip_numbers

# CPU time, not wall time: the bound is about the reader, not about the machine's load.
# The regular-expression reader took 2.4 s on 200 spaces and 91 s on 500.
SECONDS_PER_NOTE = 0.5
PATIENT = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=200, deadline=None)

HOSTILE_UNITS = [
    " ", "#", "1-", ", ", "# ", "1 ", ": 1 ", "clip ", "clips no. ", "1\n-", "0:", "1.",
    "12 to ", " and ", "#1 and ", "9", "5 ", "1 - ", ":", "1 2s ", "\u2013", "\t\n",
]  # fmt: skip
NOTE_PIECES = [
    "clip", "clips", "Clip", "#", ":", ",", ";", "&", "+", "/", ".", "!", "?", "-", "\u2013",
    "to", "thru", "through", "and", "or", "no.", "numbers", " ", "\n", "0:03", "2s", "50%",
    "3 clips", "1.5", "0", "5", "12", "18", "19", "007", "x",
]  # fmt: skip


def cpu_seconds_to_read(text: str) -> float:
    """CPU time one parse takes, whether it returns clips or raises FeedbackError."""
    started = time.process_time()
    with suppress(FeedbackError):
        parse_clip_numbers(text)
    return time.process_time() - started


@PATIENT
@given(
    prefix=st.sampled_from(["", "clip", "clips No.", "#", ":", "Regenerate: ", "5"]),
    unit=st.one_of(st.sampled_from(HOSTILE_UNITS), st.text(min_size=1, max_size=5)),
    suffix=st.sampled_from(["", "x", ".", "!", "5"]),
)
def test_hostile_notes_up_to_the_limit_read_fast(prefix: str, unit: str, suffix: str) -> None:
    """A note of one piece repeated up to the length limit is read in well under a second."""
    repeats = (MAX_NOTE_LENGTH - len(prefix) - len(suffix)) // len(unit)
    text = prefix + unit * repeats + suffix
    assert len(text) <= MAX_NOTE_LENGTH
    assert cpu_seconds_to_read(text) < SECONDS_PER_NOTE


@settings(QUICK, max_examples=50)
@given(unit=st.sampled_from(HOSTILE_UNITS), length=st.integers(MAX_NOTE_LENGTH + 1, 1_000_000))
def test_notes_over_the_limit_are_refused_at_once(unit: str, length: int) -> None:
    """Any note over the limit raises a FeedbackError naming the limit, without reading it."""
    text = (unit * (length // len(unit) + 1))[:length]
    started = time.process_time()
    with pytest.raises(FeedbackError, match=f"read up to {MAX_NOTE_LENGTH:,} characters"):
        parse_clip_numbers(text)
    assert time.process_time() - started < 0.05


def check_outcome(text: str) -> None:
    """Reading `text` gives sorted, distinct clips 1-18, or a FeedbackError; nothing else."""
    try:
        clips = parse_clip_numbers(text)
    except FeedbackError as error:
        problem = str(error)
        assert problem
        return
    assert clips
    assert clips == sorted(set(clips))
    assert all(1 <= clip <= 18 for clip in clips)


@QUICK
@given(text=st.text(max_size=400))
def test_arbitrary_text_raises_only_feedback_error(text: str) -> None:
    """Any text at all is read as clips or refused with a FeedbackError."""
    check_outcome(text)


@QUICK
@given(text=st.lists(st.sampled_from(NOTE_PIECES), max_size=40).map("".join))
def test_note_shaped_text_raises_only_feedback_error(text: str) -> None:
    """Text built from the words and marks notes use is read or refused with a FeedbackError."""
    check_outcome(text)
