"""Reads which clips a reviewer's free-text note names.

Only numbers that are clearly clip references count: after the word "clip"/"clips",
after "#", in a list right after a colon, or a note that is nothing but a list.
Times ("0:03"), measures ("2s", "50%") and counts ("3 clips") are never clips.
A range ("5-8") expands; a number outside 1-18 or a note naming no clip is an error,
never a guess.
"""

from __future__ import annotations

import re

from clipgate.errors import FeedbackError
from clipgate.models import CLIP_COUNT

_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?\b")
_MEASURE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:ms|s|sec|secs|seconds?|min|mins|minutes?|fps|px|x|%)(?![A-Za-z])",
    re.IGNORECASE,
)
_DECIMAL = re.compile(r"\b\d+\.\d+\b")
_COUNT = re.compile(r"\b\d+\s+(?=(?:clips|videos|shots)\b)", re.IGNORECASE)

_ITEM = r"#?\s*\d+(?:\s*(?:-|\u2013|\u2014|to|through|thru)\s*#?\s*\d+)?"
_SEPARATOR = r"(?:\s*(?:,|;|&|\+|/|\band\b|\bor\b)\s*|\s+)"
_LIST = rf"{_ITEM}(?:{_SEPARATOR}{_ITEM})*"

_AFTER_CLIP_WORD = re.compile(
    rf"\bclips?\b\s*(?:nos?\.?|numbers?)?\s*[:#]?\s*(?P<list>{_LIST})", re.IGNORECASE
)
_AFTER_HASH = re.compile(rf"(?P<list>#\s*\d+(?:{_SEPARATOR}{_ITEM})*)")
_AFTER_COLON = re.compile(rf":\s*(?P<list>{_LIST})\s*(?:$|[.;!?\n])")
_ONLY_A_LIST = re.compile(rf"^\s*(?P<list>{_LIST})\s*[.!]?\s*$")
_RANGE = re.compile(r"#?\s*(\d+)\s*(?:-|\u2013|\u2014|to|through|thru)\s*#?\s*(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def parse_clip_numbers(text: str) -> list[int]:
    """The clip numbers a note names, sorted and without duplicates.

    Raises FeedbackError when the note names no clip or a clip outside 1-18.
    """
    cleaned = _strip_non_clip_numbers(text)
    references: list[str] = []
    for pattern in (_AFTER_CLIP_WORD, _AFTER_HASH, _AFTER_COLON, _ONLY_A_LIST):
        references.extend(match.group("list") for match in pattern.finditer(cleaned))
    numbers: set[int] = set()
    for reference in references:
        numbers.update(_expand(reference, text))
    if not numbers:
        raise FeedbackError(
            f"no clip numbers found in {text!r}: name clips like "
            "'clips 5, 12, 17', 'clips 5-8' or 'clip #3 and #7'"
        )
    return sorted(numbers)


def _strip_non_clip_numbers(text: str) -> str:
    for pattern in (_TIME, _MEASURE, _DECIMAL, _COUNT):
        text = pattern.sub(" ", text)
    return text


def _expand(reference: str, original: str) -> set[int]:
    numbers: set[int] = set()
    for start_text, end_text in _RANGE.findall(reference):
        start, end = int(start_text), int(end_text)
        if start > end:
            raise FeedbackError(
                f"the range {start}-{end} in {original!r} runs backwards; write {end}-{start}"
            )
        numbers.update(_checked(number, original) for number in range(start, end + 1))
    for number_text in _NUMBER.findall(_RANGE.sub(" ", reference)):
        numbers.add(_checked(int(number_text), original))
    return numbers


def _checked(number: int, original: str) -> int:
    if not 1 <= number <= CLIP_COUNT:
        raise FeedbackError(
            f"clip {number} in {original!r} does not exist: clips are numbered 1-{CLIP_COUNT}"
        )
    return number
