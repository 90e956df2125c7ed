"""The reviewer-note reader: exactly the clips named, clear errors otherwise."""

from __future__ import annotations

import pytest

from clipgate.errors import FeedbackError
from clipgate.feedback import MAX_NOTE_LENGTH, parse_clip_numbers


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
        ("clips 5-25", "clip 19"),
        ("", "the note is empty"),
        ("  \n\t ", "the note is empty"),
        ("0", "clip 0"),
        ("none", "no clip numbers"),
        ("None.", "no clip numbers"),
    ],
)
def test_refuses_notes_without_valid_clips(text: str, complaint: str) -> None:
    """Notes naming no clip, or a clip outside 1-18, raise an error that says why."""
    with pytest.raises(FeedbackError, match=complaint):
        parse_clip_numbers(text)


@pytest.mark.parametrize("text", ["", " ", "none", "no", "-", "ok"])
def test_a_note_naming_no_clip_is_never_approval(text: str) -> None:
    """Blank and "nothing" notes are errors that say they are never read as approval."""
    with pytest.raises(FeedbackError, match="never read as approval"):
        parse_clip_numbers(text)


@pytest.mark.parametrize("digits", [4301, MAX_NOTE_LENGTH - len("clip ")])
def test_a_huge_number_is_a_feedback_error(digits: int) -> None:
    """A number too long for int() is reported as a clip that does not exist, shortened."""
    with pytest.raises(FeedbackError, match=rf"clip 9{{20}}\.\.\. \({digits:,} digits\)") as raised:
        parse_clip_numbers("clip " + "9" * digits)
    assert len(str(raised.value)) < 400


def test_an_over_long_note_is_refused_with_the_limit() -> None:
    """A note over the limit is refused, saying the limit, whatever it contains."""
    with pytest.raises(FeedbackError, match="read up to 10,000 characters"):
        parse_clip_numbers("clip 5 " + " " * MAX_NOTE_LENGTH)
    assert parse_clip_numbers("clip 5" + " " * (MAX_NOTE_LENGTH - 6)) == [5]


@pytest.mark.parametrize(
    ("text", "clips"),
    [
        ("clip #5-8", [5, 6, 7, 8]),
        ("clipclip #5-8", [5]),
        ("Bad: 5; 6 x", [5]),
        ("Bad: 5\n- 6 x", [5]),
        ("CLIPS 5 TO 7", [5, 6, 7]),
        ("#5 TO 7", [5]),
        ("clip no. 4", [4]),
        ("clip numbers: 4 & 6", [4, 6]),
        ("clips 5and6", [5]),
        ("clip \u0665", [5]),
        ("clip 005", [5]),
    ],
)
def test_keeps_the_fine_print_of_the_old_reader(text: str, clips: list[int]) -> None:
    """Corner cases read exactly as the regular-expression reader read them."""
    assert parse_clip_numbers(text) == clips
