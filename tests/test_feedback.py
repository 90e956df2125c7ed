"""The reviewer-note reader: exactly the clips named, clear errors otherwise."""

from __future__ import annotations

import pytest

from clipgate.errors import FeedbackError
from clipgate.feedback import parse_clip_numbers


@pytest.mark.parametrize(
    ("text", "clips"),
    [
        ("Regenerate: clips 5, 12, 17", [5, 12, 17]),
        ("Bad motion: 5,12,17", [5, 12, 17]),
        ("clips 5-8", [5, 6, 7, 8]),
        ("clip #3 and #7", [3, 7]),
        ("clip 5 glitch at 0:03", [5]),
        ("Clip 2 and clip 14 look off", [2, 14]),
        ("3 clips are bad: 4 and 9", [4, 9]),
        ("clip 5 jitters for 2s at 50%", [5]),
        ("clips 5 to 7, clip 7 again", [5, 6, 7]),
        ("clips 12, 5, 12", [5, 12]),
        ("5, 12", [5, 12]),
        ("clips 1\u20133 (en dash) and #18", [1, 2, 3, 18]),
    ],
)
def test_reads_the_clips_a_note_names(text: str, clips: list[int]) -> None:
    """Each example note yields exactly its clips, sorted and without duplicates."""
    assert parse_clip_numbers(text) == clips


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("the motion looks bad", "no clip numbers"),
        ("glitch at 0:03", "no clip numbers"),
        ("3 clips are wrong", "no clip numbers"),
        ("clip 19", "clip 19"),
        ("clips 0-3", "clip 0"),
        ("clips 8-5", "runs backwards"),
        ("", "no clip numbers"),
    ],
)
def test_refuses_notes_without_valid_clips(text: str, complaint: str) -> None:
    """Notes naming no clip, or a clip outside 1-18, raise an error that says why."""
    with pytest.raises(FeedbackError, match=complaint):
        parse_clip_numbers(text)
