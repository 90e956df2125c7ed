"""Reading MP4 files: the top-level boxes, the moov, durations, and `inspect`.

Only box headers and the moov are read, never the media: the top level is walked by
seeking from header to header. A file an interrupted faststart left marked is reported
as such (see `recovery`) and never parsed as if it were whole.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from clipgate.mp4.files import Malformed, about, locked, pread_exact, require
from clipgate.mp4.recovery import Interrupted, find_interruption

U32_MAX = 0xFFFFFFFF
_KNOWN_TOP_LEVEL = frozenset(
    {
        "ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "pdin", "uuid", "moof",
        "mfra", "meta", "sidx", "ssix", "prft", "emsg", "pnot", "junk",
    }
)  # fmt: skip
PADDING = frozenset({"free", "skip", "wide"})
MAX_INDEX_BOX = 256 * 1024 * 1024


class Box(NamedTuple):
    """One top-level box: its four-character type, where it starts, and its full size."""

    type: str
    offset: int
    size: int
    header_size: int = 8

    @property
    def end(self) -> int:
        """Offset of the first byte after this box."""
        return self.offset + self.size


class Mp4Info(NamedTuple):
    """What `inspect` learns from a file's boxes."""

    faststart: bool
    fragmented: bool
    duration_s: float
    boxes: list[Box]


class Layout(NamedTuple):
    """Top-level boxes of a file, or the interrupted faststart it is part-way through."""

    size: int
    boxes: list[Box]
    interrupted: Interrupted | None = None


class Movie(NamedTuple):
    """A readable, non-interrupted MP4: its layout, its moov, and what inspect reports."""

    layout: Layout
    moov: Box
    moov_bytes: bytes
    info: Mp4Info

    @property
    def first_mdat(self) -> Box | None:
        """The first mdat box, if any."""
        return next((box for box in self.layout.boxes if box.type == "mdat"), None)


def inspect(path: Path) -> Mp4Info:
    """Report faststart, fragmented, duration and top-level boxes, reading only headers."""
    with about(path), locked(path, exclusive=False) as fd:
        return read_movie(fd, path).info


def read_layout(fd: int) -> Layout:
    """The top-level boxes, or the interrupted faststart that marks the file."""
    file_size = os.fstat(fd).st_size
    if file_size == 0:
        raise Malformed("not an MP4: the file is empty")
    interrupted = find_interruption(fd, file_size)
    if interrupted is not None:
        return Layout(file_size, [], interrupted)
    head = os.pread(fd, 8, 0)
    if len(head) < 8:
        raise Malformed(f"not an MP4: only {len(head)} bytes long")
    if head == bytes(8):
        raise Malformed("not an MP4: it starts with zero bytes, not an MP4 box")
    return Layout(file_size, _read_top_level(fd, file_size))


def _read_top_level(fd: int, file_size: int) -> list[Box]:
    """Walk the top-level boxes to the end of the file by seeking from header to header."""
    boxes: list[Box] = []
    offset = 0
    while offset < file_size:
        header = os.pread(fd, 16, offset)
        if len(header) < 8:
            raise Malformed(f"the file ends inside a box header at offset {offset} (truncated)")
        size, raw_type = struct.unpack_from(">I4s", header)
        box_type = _box_type(raw_type)
        if not boxes and box_type not in _KNOWN_TOP_LEVEL:
            raise Malformed(f"not an MP4: it starts with {header[:8]!r}, not an MP4 box")
        if not raw_type.isascii() or not all(32 <= byte < 127 for byte in raw_type):
            raise Malformed(f"corrupt box header at offset {offset}: type {raw_type!r}")
        header_size = 8
        if size == 1:
            if len(header) < 16:
                raise Malformed(
                    f"the file ends inside the '{box_type}' header at offset {offset} (truncated)"
                )
            (size,) = struct.unpack_from(">Q", header, 8)
            header_size = 16
        elif size == 0:
            size = file_size - offset
        if size < header_size:
            raise Malformed(f"box '{box_type}' at offset {offset} has an impossible size {size}")
        if offset + size > file_size:
            raise Malformed(
                f"box '{box_type}' at offset {offset} needs {size} bytes but the file ends "
                f"{file_size - offset} bytes after it starts (truncated)"
            )
        boxes.append(Box(box_type, offset, size, header_size))
        offset += size
    return boxes


def read_movie(fd: int, path: Path) -> Movie:
    """The file's layout and moov; Malformed for anything that is no readable, whole MP4."""
    layout = read_layout(fd)
    if layout.interrupted is not None:
        raise Malformed(
            f"interrupted faststart, run `clipgate mp4 repair {path}`: a clipgate faststart "
            "stopped part-way and marked the file; repair puts it back as it was"
        )
    moov = next((box for box in layout.boxes if box.type == "moov"), None)
    if moov is None:
        kinds = ", ".join(box.type for box in layout.boxes)
        raise Malformed(f"no moov box, so nothing says how to play it (top-level boxes: {kinds})")
    if moov.size > MAX_INDEX_BOX:
        raise Malformed(f"the moov box is {moov.size} bytes, more than this tool reads")
    moov_bytes = pread_exact(fd, moov.size, moov.offset)
    inside = {
        child.type: child for child in children(moov_bytes, moov.header_size, len(moov_bytes))
    }
    if "cmov" in inside:
        raise Malformed("the moov is compressed (cmov), which this tool cannot read or relocate")
    mvhd = require(inside.get("mvhd"), "the moov has no mvhd box")
    timescale, duration = _timescale_and_duration(moov_bytes[mvhd.payload : mvhd.end], "mvhd")
    fragmented = "mvex" in inside or any(box.type == "moof" for box in layout.boxes)
    seconds = duration / timescale
    if fragmented:
        seconds = _fragmented_seconds(fd, layout, moov, moov_bytes, timescale, seconds)
    mdat = next((box for box in layout.boxes if box.type == "mdat"), None)
    faststart = mdat is None or moov.offset < mdat.offset
    info = Mp4Info(
        faststart=faststart, fragmented=fragmented, duration_s=seconds, boxes=layout.boxes
    )
    return Movie(layout, moov, moov_bytes, info)


class Child(NamedTuple):
    """A box inside a container: its type, and where its header, payload and end are."""

    type: str
    start: int
    payload: int
    end: int


def children(data: bytes, start: int, end: int) -> Iterator[Child]:
    """The boxes inside a container's payload data[start:end]."""
    offset = start
    while offset < end:
        if end - offset < 8:
            raise Malformed(f"{end - offset} stray bytes inside a box")
        size, raw_type = struct.unpack_from(">I4s", data, offset)
        box_type = _box_type(raw_type)
        header_size = 8
        if size == 1:
            if end - offset < 16:
                raise Malformed(f"box '{box_type}' is cut inside its header")
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header_size = 16
        elif size == 0:
            size = end - offset
        if size < header_size or offset + size > end:
            raise Malformed(f"box '{box_type}' does not fit inside its parent box")
        yield Child(box_type, offset, offset + header_size, offset + size)
        offset += size


def find(data: bytes, start: int, end: int, *path: str) -> Child | None:
    """The first box along `path` under data[start:end]."""
    found: Child | None = None
    for box_type in path:
        found = next(
            (child for child in children(data, start, end) if child.type == box_type), None
        )
        if found is None:
            return None
        start, end = found.payload, found.end
    return found


def _timescale_and_duration(payload: bytes, name: str) -> tuple[int, int]:
    """Timescale and duration of an mvhd or mdhd payload (versions 0 and 1)."""
    version = payload[0] if payload else -1
    layout = {0: (">II", 12), 1: (">IQ", 20)}.get(version)
    if layout is None or len(payload) < layout[1] + struct.calcsize(layout[0]):
        raise Malformed(f"{name} box is too short or has unknown version {version}")
    timescale, duration = struct.unpack_from(layout[0], payload, layout[1])
    if timescale == 0:
        raise Malformed(f"{name} box has a timescale of 0")
    unknown = U32_MAX if version == 0 else 0xFFFFFFFFFFFFFFFF
    return timescale, 0 if duration == unknown else duration


def _full_box_int(payload: bytes, name: str) -> int:
    """The single version-sized integer after version/flags (mehd, tfdt)."""
    if len(payload) >= 12 and payload[0] == 1:
        value: int = struct.unpack_from(">Q", payload, 4)[0]
    elif len(payload) >= 8:
        value = struct.unpack_from(">I", payload, 4)[0]
    else:
        raise Malformed(f"{name} box is too short")
    return value


def _fragmented_seconds(
    fd: int,
    layout: Layout,
    moov_box: Box,
    moov: bytes,
    movie_timescale: int,
    moov_seconds: float,
) -> float:
    """Duration of a fragmented file: mehd if it says, else the end of the last fragment."""
    mvex = find(moov, moov_box.header_size, len(moov), "mvex")
    if mvex is not None:
        mehd = find(moov, mvex.payload, mvex.end, "mehd")
        if mehd is not None:
            fragment_duration = _full_box_int(moov[mehd.payload : mehd.end], "mehd")
            if fragment_duration:
                return fragment_duration / movie_timescale
    timescales: dict[int, int] = {}
    default_durations: dict[int, int] = {}
    for trak in children(moov, moov_box.header_size, len(moov)):
        if trak.type == "trak":
            tkhd = require(find(moov, trak.payload, trak.end, "tkhd"), "trak has no tkhd box")
            track_id = _track_id(moov[tkhd.payload : tkhd.end], "tkhd")
            mdhd = require(
                find(moov, trak.payload, trak.end, "mdia", "mdhd"), "trak has no mdhd box"
            )
            timescales[track_id] = _timescale_and_duration(moov[mdhd.payload : mdhd.end], "mdhd")[0]
        elif trak.type == "mvex":
            for trex in children(moov, trak.payload, trak.end):
                if trex.type == "trex" and trex.end - trex.payload >= 24:
                    track_id, _, duration = struct.unpack_from(">III", moov, trex.payload + 4)
                    default_durations[track_id] = duration
    track_ends: dict[int, int] = {}
    for moof in (box for box in layout.boxes if box.type == "moof"):
        if moof.size > MAX_INDEX_BOX:
            raise Malformed(f"the moof box at offset {moof.offset} is too large")
        data = pread_exact(fd, moof.size, moof.offset)
        for traf in children(data, moof.header_size, len(data)):
            if traf.type == "traf":
                track_id, end = _traf_end(data, traf, track_ends, default_durations)
                track_ends[track_id] = end
    seconds = [end / timescales[track] for track, end in track_ends.items() if track in timescales]
    return max([moov_seconds, *seconds])


def _track_id(payload: bytes, name: str) -> int:
    offset = 20 if payload[:1] == b"\x01" else 12
    if len(payload) < offset + 4:
        raise Malformed(f"{name} box is too short")
    track_id: int = struct.unpack_from(">I", payload, offset)[0]
    return track_id


def _traf_end(
    data: bytes, traf: Child, track_ends: dict[int, int], default_durations: dict[int, int]
) -> tuple[int, int]:
    """Track id and decode time at the end of one track fragment."""
    tfhd = require(find(data, traf.payload, traf.end, "tfhd"), "traf has no tfhd box")
    payload = data[tfhd.payload : tfhd.end]
    if len(payload) < 8:
        raise Malformed("tfhd box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    (track_id,) = struct.unpack_from(">I", payload, 4)
    default_duration = default_durations.get(track_id, 0)
    if flags & 0x08:
        position = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        if len(payload) < position + 4:
            raise Malformed("tfhd box is too short for its flags")
        (default_duration,) = struct.unpack_from(">I", payload, position)
    end = track_ends.get(track_id, 0)
    for child in children(data, traf.payload, traf.end):
        if child.type == "tfdt":
            end = _full_box_int(data[child.payload : child.end], "tfdt")
        elif child.type == "trun":
            end += _trun_duration(data[child.payload : child.end], default_duration)
    return track_id, end


def _trun_duration(payload: bytes, default_duration: int) -> int:
    if len(payload) < 8:
        raise Malformed("trun box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    count: int = struct.unpack_from(">I", payload, 4)[0]
    if not flags & 0x100:
        return count * default_duration
    position = 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    entry_size = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if position + count * entry_size > len(payload):
        raise Malformed(f"trun box lists {count} samples but is too short to hold them")
    return sum(
        struct.unpack_from(">I", payload, position + index * entry_size)[0]
        for index in range(count)
    )


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def box_header(box_type: str, size: int) -> bytes:
    """An 8-byte box header, or a 16-byte one when `size` needs 64 bits."""
    if size <= U32_MAX:
        return struct.pack(">I4s", size, box_type.encode("latin-1"))
    return struct.pack(">I4sQ", 1, box_type.encode("latin-1"), size)


def box_bytes(box_type: str, payload: bytes) -> bytes:
    """A whole box around `payload`."""
    size = len(payload) + 8
    if size > U32_MAX:
        size += 8
    return box_header(box_type, size) + payload
