"""Property tests: the note reader reads or refuses any note, failing only with FeedbackError.

How fast it reads hostile notes (linear in their length) is measured in bench/feedback.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipgate.errors import FeedbackError
from clipgate.feedback import MAX_NOTE_LENGTH, parse_clip_numbers

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


@PATIENT
@given(
    prefix=st.sampled_from(["", "clip", "clips No.", "#", ":", "Regenerate: ", "5"]),
    unit=st.one_of(st.sampled_from(HOSTILE_UNITS), st.text(min_size=1, max_size=5)),
    suffix=st.sampled_from(["", "x", ".", "!", "5"]),
)
def test_hostile_notes_up_to_the_limit_are_read_or_refused(
    prefix: str, unit: str, suffix: str
) -> None:
    """A note of one piece repeated up to the length limit is read or refused, nothing else."""
    repeats = (MAX_NOTE_LENGTH - len(prefix) - len(suffix)) // len(unit)
    text = prefix + unit * repeats + suffix
    assert len(text) <= MAX_NOTE_LENGTH
    check_outcome(text)


@settings(QUICK, max_examples=50)
@given(unit=st.sampled_from(HOSTILE_UNITS), length=st.integers(MAX_NOTE_LENGTH + 1, 1_000_000))
def test_notes_over_the_limit_are_refused_naming_the_limit(unit: str, length: int) -> None:
    """Any note over the limit raises a FeedbackError naming the limit, whatever it holds."""
    text = (unit * (length // len(unit) + 1))[:length]
    with pytest.raises(FeedbackError, match=f"read up to {MAX_NOTE_LENGTH:,} characters"):
        parse_clip_numbers(text)


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
