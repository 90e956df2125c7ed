"""Reads which clips a reviewer's free-text note names.

Only numbers that are clearly clip references count: after the word "clip"/"clips",
after "#", in a list right after a colon, or a note that is nothing but a list.
Times ("0:03"), measures ("2s", "50%") and counts ("3 clips") are never clips.
A range ("5-8") expands; a number outside 1-18, an empty note or a note naming no clip
is an error, never a guess (and never an approval).

Reading takes time linear in the note: times, measures and counts are removed by flat
patterns with one quantifier each, and the lists are read by the hand-written scanner
below, which never goes back over what it has read. Notes longer than
`MAX_NOTE_LENGTH` characters are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from clipgate.clip_count import CLIP_COUNT
from clipgate.errors import FeedbackError

MAX_NOTE_LENGTH = 10_000

_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?\b")
_MEASURE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:ms|s|sec|secs|seconds?|min|mins|minutes?|fps|px|x|%)(?![A-Za-z])",
    re.IGNORECASE,
)
_DECIMAL = re.compile(r"\b\d+\.\d+\b")
_COUNT = re.compile(r"\b\d+\s+(?=(?:clips|videos|shots)\b)", re.IGNORECASE)

_CLIP_WORDS = ("clip", "clips")
# Longest first: the scanner takes the first that matches, as a greedy pattern would.
_NUMBER_WORDS = ("numbers", "number", "nos", "no")
_RANGE_WORDS = ("-", "\u2013", "\u2014", "to", "through", "thru")
_SEPARATOR_MARKS = ",;&+/"
_SEPARATOR_WORDS = ("and", "or")
_COLON_LIST_ENDS = ".;!?"
_ONLY_A_LIST_ENDS = ".!"
_QUOTED_LENGTH = 120
_SHOWN_DIGITS = 20


class _Item(NamedTuple):
    """One list entry: a number, or a range `first`-`last`; digits as written."""

    first: str
    last: str | None
    first_end: int
    end: int


class _Scanner:
    """Reads clip lists from a note (times, measures and counts already blanked out)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text)

    def references(self) -> Iterator[list[_Item]]:
        """Every clip list, in the order the note's patterns are tried: clip word, #, :."""
        yield from self._after_clip_words()
        yield from self._after_hashes()
        yield from self._after_colons()
        only = self._only_a_list()
        if only is not None:
            yield only

    def _after_clip_words(self) -> Iterator[list[_Item]]:
        position = 0
        while position < self.size:
            if not _is_word(self.text[position]):
                position += 1
                continue
            word_end = position
            while word_end < self.size and _is_word(self.text[word_end]):
                word_end += 1
            word = self.text[position:word_end]
            position = word_end
            if word.lower() not in _CLIP_WORDS:
                continue
            found = self._list(self._after_number_word(word_end), ignore_case=True)
            if found is not None:
                yield found
                position = found[-1].end

    def _after_number_word(self, position: int) -> int:
        """Skip what may sit between "clip" and its list: "no.", "number", ":", "#"."""
        position = self._spaces(position)
        word = next((w for w in _NUMBER_WORDS if self._word_at(position, w, True)), None)
        if word is not None:
            position += len(word)
            if word.startswith("no") and not word.startswith("num"):
                position += self.text.startswith(".", position)
        position = self._spaces(position)
        if position < self.size and self.text[position] in ":#":
            position = self._spaces(position + 1)
        return position

    def _after_hashes(self) -> Iterator[list[_Item]]:
        position = self.text.find("#")
        while position != -1:
            # "#5-8" is a list only where another pattern reads it: after "#" the first
            # entry is one number.
            found = self._list(position, ignore_case=False, first_may_be_range=False)
            if found is not None:
                yield found
                position = self.text.find("#", found[-1].end)
            else:
                position = self.text.find("#", position + 1)

    def _after_colons(self) -> Iterator[list[_Item]]:
        position = self.text.find(":")
        while position != -1:
            found = self._list(self._spaces(position + 1), ignore_case=False)
            if found is not None:
                ended = self._ended(found, self._ends_a_colon_list)
                if ended is not None:
                    yield ended
            position = self.text.find(":", position + 1)

    def _only_a_list(self) -> list[_Item] | None:
        found = self._list(self._spaces(0), ignore_case=False)
        return None if found is None else self._ended(found, self._ends_the_note)

    def _ended(self, items: list[_Item], ends_here: Callable[[int], bool]) -> list[_Item] | None:
        """The longest front part of `items` that `ends_here` accepts the text after."""
        for index in range(len(items) - 1, -1, -1):
            item = items[index]
            if ends_here(item.end):
                return items[: index + 1]
            if item.last is not None and ends_here(item.first_end):
                return [*items[:index], _Item(item.first, None, item.first_end, item.first_end)]
        return None

    def _ends_a_colon_list(self, position: int) -> bool:
        after = self._spaces(position)
        return (
            after == self.size
            or self.text[after] in _COLON_LIST_ENDS
            or "\n" in self.text[position:after]
        )

    def _ends_the_note(self, position: int) -> bool:
        after = self._spaces(position)
        if after < self.size and self.text[after] in _ONLY_A_LIST_ENDS:
            after = self._spaces(after + 1)
        return after == self.size

    def _list(
        self, position: int, *, ignore_case: bool, first_may_be_range: bool = True
    ) -> list[_Item] | None:
        """Items joined by separators, as many as follow one another from `position`."""
        item = self._item(position, ignore_case)
        if item is None:
            return None
        if not first_may_be_range:
            item = _Item(item.first, None, item.first_end, item.first_end)
        items = [item]
        while True:
            after_separator = self._separator(items[-1].end, ignore_case)
            if after_separator is None:
                return items
            item = self._item(after_separator, ignore_case)
            if item is None:
                return items
            items.append(item)

    def _item(self, position: int, ignore_case: bool) -> _Item | None:
        """`#5`, `5`, or a range such as `5-8`, `#5 to #8`, `5 through 8`."""
        first_start = self._spaces(position + self.text.startswith("#", position))
        first_end = self._digits(first_start)
        if first_end == first_start:
            return None
        first = self.text[first_start:first_end]
        connector_at = self._spaces(first_end)
        connector = next(
            (word for word in _RANGE_WORDS if self._word_at(connector_at, word, ignore_case)),
            None,
        )
        if connector is not None:
            last_start = connector_at + len(connector)
            last_start = self._spaces(last_start)
            last_start = self._spaces(last_start + self.text.startswith("#", last_start))
            last_end = self._digits(last_start)
            if last_end > last_start:
                return _Item(first, self.text[last_start:last_end], first_end, last_end)
        return _Item(first, None, first_end, first_end)

    def _separator(self, position: int, ignore_case: bool) -> int | None:
        """Where the next item may start after a comma, "and", "&"... or plain spaces."""
        mark_at = self._spaces(position)
        if mark_at < self.size and self.text[mark_at] in _SEPARATOR_MARKS:
            return self._spaces(mark_at + 1)
        for word in _SEPARATOR_WORDS:
            word_end = mark_at + len(word)
            if (
                self._word_at(mark_at, word, ignore_case)
                and self._boundary(mark_at)
                and self._boundary(word_end)
            ):
                return self._spaces(word_end)
        return mark_at if mark_at > position else None

    def _word_at(self, position: int, word: str, ignore_case: bool) -> bool:
        piece = self.text[position : position + len(word)]
        return (piece.lower() if ignore_case else piece) == word

    def _boundary(self, position: int) -> bool:
        before = position > 0 and _is_word(self.text[position - 1])
        after = position < self.size and _is_word(self.text[position])
        return before != after

    def _spaces(self, position: int) -> int:
        while position < self.size and self.text[position].isspace():
            position += 1
        return position

    def _digits(self, position: int) -> int:
        while position < self.size and self.text[position].isdecimal():
            position += 1
        return position


def parse_clip_numbers(text: str) -> list[int]:
    """The clip numbers a note names, sorted and without duplicates.

    Raises FeedbackError when the note is empty, longer than MAX_NOTE_LENGTH characters,
    or names no clip, a clip outside 1-18, or a range that runs backwards.
    """
    if len(text) > MAX_NOTE_LENGTH:
        raise FeedbackError(
            f"the note is {len(text):,} characters long; notes are read up to "
            f"{MAX_NOTE_LENGTH:,} characters: name the clips in a shorter note"
        )
    if not text.strip():
        raise FeedbackError(
            f"no clip numbers found in {text!r}: the note is empty. Name clips like "
            "'clips 5, 12, 17'; an empty note is never read as approval"
        )
    numbers: set[int] = set()
    for reference in _Scanner(_strip_non_clip_numbers(text)).references():
        numbers.update(_expand(reference, text))
    if not numbers:
        raise FeedbackError(
            f"no clip numbers found in {_quoted(text)}: name clips like "
            "'clips 5, 12, 17', 'clips 5-8' or 'clip #3 and #7' "
            "(a note naming no clip is never read as approval)"
        )
    return sorted(numbers)


def _strip_non_clip_numbers(text: str) -> str:
    for pattern in (_TIME, _MEASURE, _DECIMAL, _COUNT):
        text = pattern.sub(" ", text)
    return text


def _expand(reference: list[_Item], original: str) -> set[int]:
    """The clips of one list: its ranges first, then its single numbers."""
    numbers: set[int] = set()
    for item in reference:
        if item.last is None:
            continue
        start, end = _canonical(item.first), _canonical(item.last)
        if (len(start), start) > (len(end), end):
            raise FeedbackError(
                f"the range {_shown(start)}-{_shown(end)} in {_quoted(original)} runs "
                f"backwards; write {_shown(end)}-{_shown(start)}"
            )
        first = _checked(start, original)
        last = _clip_value(end)
        if last is None:
            # Checked in turn, the first number of the range that does not exist is 19.
            raise _no_such_clip(str(CLIP_COUNT + 1), original)
        numbers.update(range(first, last + 1))
    for item in reference:
        if item.last is None:
            numbers.add(_checked(_canonical(item.first), original))
    return numbers


def _canonical(digits: str) -> str:
    """Digits as ASCII without leading zeros ("0" for zero): comparable without int()."""
    ascii_digits = digits if digits.isascii() else "".join(str(int(d)) for d in digits)
    return ascii_digits.lstrip("0") or "0"


def _clip_value(digits: str) -> int | None:
    value = int(digits) if len(digits) <= len(str(CLIP_COUNT)) else None
    return value if value is not None and 1 <= value <= CLIP_COUNT else None


def _checked(digits: str, original: str) -> int:
    value = _clip_value(digits)
    if value is None:
        raise _no_such_clip(digits, original)
    return value


def _no_such_clip(digits: str, original: str) -> FeedbackError:
    return FeedbackError(
        f"clip {_shown(digits)} in {_quoted(original)} does not exist: clips are "
        f"numbered 1-{CLIP_COUNT}"
    )


def _shown(digits: str) -> str:
    if len(digits) <= _SHOWN_DIGITS:
        return digits
    return f"{digits[:_SHOWN_DIGITS]}... ({len(digits):,} digits)"


def _quoted(text: str) -> str:
    if len(text) <= _QUOTED_LENGTH:
        return repr(text)
    return f"{text[:_QUOTED_LENGTH]!r}... ({len(text):,} characters)"


def _is_word(character: str) -> bool:
    return character.isalnum() or character == "_"
