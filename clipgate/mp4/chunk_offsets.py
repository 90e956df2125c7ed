"""Rewriting a moov for its new place: every absolute file offset it holds, moved.

A moov points into the media by absolute file offsets: the chunk offset tables (stco,
and co64 for 64-bit offsets) of every track, and saio (sample auxiliary information,
e.g. CENC) where present. Moving boxes means rewriting those; nothing else in a moov
depends on where it lies.
"""

from __future__ import annotations

import bisect
import struct

from clipgate.mp4.boxes import U32_MAX, box_bytes, children
from clipgate.mp4.files import Malformed

# Only these hold, on the way down from moov, the boxes that carry file offsets.
_OFFSET_PATH = frozenset({"trak", "mdia", "minf", "stbl"})


class Relocation:
    """Maps an old file offset to its new one, by (old start, old end, shift) segments."""

    def __init__(self, segments: list[tuple[int, int, int]]) -> None:
        self._segments = sorted(segments)
        self._starts = [start for start, _, _ in self._segments]

    def __call__(self, offset: int) -> int:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            start, end, shift = self._segments[index]
            if start <= offset < end:
                return offset + shift
        raise Malformed(f"a sample offset ({offset}) points outside the media data")


def relocated_moov(moov: bytes, header_size: int, relocate: Relocation) -> bytes:
    """The whole moov box again, every file offset in it passed through `relocate`."""
    return box_bytes("moov", _relocated_children(moov, header_size, len(moov), relocate))


def _relocated_children(data: bytes, start: int, end: int, relocate: Relocation) -> bytes:
    parts: list[bytes] = []
    for child in children(data, start, end):
        payload = data[child.payload : child.end]
        if child.type in _OFFSET_PATH:
            parts.append(
                box_bytes(child.type, _relocated_children(data, child.payload, child.end, relocate))
            )
        elif child.type in ("stco", "co64"):
            parts.append(_relocated_chunk_offsets(child.type, payload, relocate))
        elif child.type == "saio":
            parts.append(_relocated_aux_offsets(payload, relocate))
        else:
            parts.append(data[child.start : child.end])
    return b"".join(parts)


def _offset_table(payload: bytes, position: int, wide: bool, name: str) -> tuple[int, ...]:
    if len(payload) < position + 4:
        raise Malformed(f"{name} box is too short")
    (count,) = struct.unpack_from(">I", payload, position)
    width = 8 if wide else 4
    if position + 4 + count * width > len(payload):
        raise Malformed(f"{name} box lists {count} offsets but is too short to hold them")
    return struct.unpack_from(f">{count}{'Q' if wide else 'I'}", payload, position + 4)


def _relocated_chunk_offsets(box_type: str, payload: bytes, relocate: Relocation) -> bytes:
    """stco/co64 with every chunk offset moved; stco becomes co64 if one passes 32 bits."""
    moved = [relocate(offset) for offset in _offset_table(payload, 4, box_type == "co64", box_type)]
    if box_type == "stco" and all(offset <= U32_MAX for offset in moved):
        return box_bytes("stco", payload[:4] + struct.pack(f">I{len(moved)}I", len(moved), *moved))
    return box_bytes("co64", payload[:4] + struct.pack(f">I{len(moved)}Q", len(moved), *moved))


def _relocated_aux_offsets(payload: bytes, relocate: Relocation) -> bytes:
    """saio (sample auxiliary info, e.g. CENC) holds absolute offsets inside a moov too."""
    if len(payload) < 4:
        raise Malformed("saio box is too short")
    version, flags = payload[0], payload[1:4]
    position = 4 + (8 if int.from_bytes(flags, "big") & 0x01 else 0)
    moved = [relocate(offset) for offset in _offset_table(payload, position, version == 1, "saio")]
    if version == 0 and any(offset > U32_MAX for offset in moved):
        version = 1
    table = struct.pack(f">I{len(moved)}{'Q' if version == 1 else 'I'}", len(moved), *moved)
    return box_bytes("saio", bytes([version]) + flags + payload[4:position] + table)
