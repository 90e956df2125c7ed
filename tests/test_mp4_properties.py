"""Property tests: the box reader meets random and mutated bytes with MP4Error only."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipgate import mp4
from clipgate.errors import MP4Error
from tests.mp4_samples import encoded, find_box

FAST = settings(
    max_examples=150,
    deadline=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOX_TYPES = ["ftyp", "moov", "mdat", "free", "moof", "mvhd", "trak", "stco", "co64", "mvex", "uuid"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file path reused by every example."""
    return tmp_path_factory.mktemp("mp4-properties") / "sample.mp4"


def inspect_bytes(path: Path, data: bytes) -> None:
    """Write `data` and inspect it: a result, or MP4Error and nothing else."""
    path.write_bytes(data)
    try:
        info = mp4.inspect(path)
    except MP4Error as error:
        problem = str(error)
        assert problem.startswith(f"{path}: ")
        return
    assert info.duration_s >= 0
    assert sum(box.size for box in info.boxes) == len(data)


def framed(kind: str, payload: bytes, size: int | str) -> bytes:
    """A box around `payload` whose size field is right, zero, 64-bit, or a given number."""
    name = kind.encode()
    if size == "exact":
        return struct.pack(">I4s", len(payload) + 8, name) + payload
    if size == "large":
        return struct.pack(">I4sQ", 1, name, len(payload) + 16) + payload
    return struct.pack(">I4s", 0 if size == "zero" else size, name) + payload


SIZES = st.one_of(st.sampled_from(["exact", "zero", "large"]), st.integers(0, 2**32 - 1))
BOX_SOUP = st.recursive(
    st.binary(max_size=48),
    lambda inner: st.lists(
        st.builds(framed, st.sampled_from(BOX_TYPES), inner, SIZES), min_size=1, max_size=6
    ).map(b"".join),
    max_leaves=12,
)


@FAST
@given(data=st.binary(max_size=512))
def test_random_bytes_raise_only_mp4_error(scratch: Path, data: bytes) -> None:
    """Arbitrary bytes are inspected or rejected with MP4Error, never another exception."""
    inspect_bytes(scratch, data)


@FAST
@given(data=BOX_SOUP)
def test_box_soup_raises_only_mp4_error(scratch: Path, data: bytes) -> None:
    """Box-shaped bytes with wrong, zero and 64-bit sizes give MP4Error or a result."""
    inspect_bytes(scratch, data)


@st.composite
def mutated_clip(draw: st.DrawFn) -> bytes:
    """The real moov-at-end clip with some bytes changed (mostly in the moov) or cut short."""
    data = bytearray(encoded("av"))
    moov_offset = find_box(bytes(data), "moov")[1]
    for _ in range(draw(st.integers(1, 6))):
        in_moov = draw(st.booleans())
        index = draw(st.integers(moov_offset if in_moov else 0, len(data) - 1))
        data[index] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@settings(FAST, max_examples=100)
@given(data=mutated_clip(), method=st.sampled_from(["auto", "insert-range", "copy-unsynced"]))
def test_mutated_clip_is_relocated_or_left_untouched(
    scratch: Path, data: bytes, method: mp4.MethodChoice
) -> None:
    """Faststart on a damaged clip succeeds, or raises MP4Error and leaves its bytes alone."""
    scratch.write_bytes(data)
    try:
        result = mp4.relocate_moov(scratch, method=method)
    except MP4Error:
        assert scratch.read_bytes() == data
    else:
        info = mp4.inspect(scratch)
        assert info.faststart or info.fragmented
        if not result.changed:
            assert scratch.read_bytes() == data


MARKER_LOOKALIKE = st.binary(min_size=64, max_size=64).map(
    lambda rest: struct.pack(">I4s", 88, b"cgfs") + b"clipgate.fs.v1\r\n" + rest
)


@settings(FAST, max_examples=60)
@given(
    head=st.one_of(st.binary(max_size=64), st.integers(1, 70_000).map(bytes)),
    tail=st.one_of(st.binary(max_size=128), MARKER_LOOKALIKE),
)
def test_check_and_repair_never_write_an_unmarked_file(
    scratch: Path, head: bytes, tail: bytes
) -> None:
    """Zero or junk heads and tails (even marker look-alikes) around a clip are never written."""
    data = head + encoded("av") + tail
    scratch.write_bytes(data)
    inspect_bytes(scratch, data)
    try:
        repaired = mp4.repair(scratch)
    except MP4Error as error:
        repaired = False
        problem = str(error)
        assert "clipgate faststart marker" in problem
    assert not repaired
    assert scratch.read_bytes() == data
