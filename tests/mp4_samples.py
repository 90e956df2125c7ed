"""Small real MP4 files for the mp4 tests, made with the wheel's ffmpeg and edited by hand.

The box editing here is written independently of `clipgate.mp4`, so a test does not
check the module against itself.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from clipgate.ffmpeg import ffmpeg_exe

CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "mvex"}
TopBox = tuple[str, int, int, int]  # type, offset, size, header size


def run_ffmpeg(*arguments: str) -> bytes:
    """Run the wheel's ffmpeg and return its stdout."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


@cache
def encoded(kind: str) -> bytes:
    """A 1 s 160x90 clip: "av" (video+audio, moov at end), "faststart", "fragmented"."""
    video = ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=25:d=1"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440:d=1"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-c:a", "aac", "-shortest"]
    flags = {
        "av": [],
        "faststart": ["-movflags", "+faststart"],
        "fragmented": ["-movflags", "frag_keyframe+empty_moov+default_base_moof"],
    }[kind]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / f"{kind}.mp4"
        run_ffmpeg(*video, *audio, *codecs, *flags, str(output))
        return output.read_bytes()


def framemd5(path: Path) -> str:
    """Checksums of every packet of every stream, as ffmpeg's framemd5 muxer prints them."""
    return run_ffmpeg("-i", str(path), "-map", "0", "-c", "copy", "-f", "framemd5", "-").decode()


def top_boxes(data: bytes) -> list[TopBox]:
    """Top-level boxes of a complete file."""
    boxes: list[TopBox] = []
    offset = 0
    while offset < len(data):
        size, raw = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = len(data) - offset
        boxes.append((raw.decode("latin-1"), offset, size, header))
        offset += size
    return boxes


def find_box(data: bytes, box_type: str) -> TopBox:
    """The first top-level box of a type."""
    return next(box for box in top_boxes(data) if box[0] == box_type)


def box(box_type: str, payload: bytes) -> bytes:
    """A box with a 32-bit size header."""
    return struct.pack(">I4s", len(payload) + 8, box_type.encode()) + payload


def edit_moov(moov: bytes, edit: Callable[[str, bytes], bytes | None]) -> bytes:
    """Rebuild a moov box, letting `edit` replace any box on the way to stbl or mvex."""

    def rebuild(box_type: str, payload: bytes) -> bytes:
        parts: list[bytes] = []
        offset = 0
        while offset < len(payload):
            size, raw = struct.unpack_from(">I4s", payload, offset)
            child_type = raw.decode("latin-1")
            child = payload[offset : offset + size]
            replaced = edit(child_type, child)
            if replaced is not None:
                parts.append(replaced)
            elif child_type in CONTAINERS:
                parts.append(rebuild(child_type, child[8:]))
            else:
                parts.append(child)
            offset += size
        return box(box_type, b"".join(parts))

    return rebuild("moov", moov[8:])


def replace_last_moov(data: bytes, edit: Callable[[str, bytes], bytes | None]) -> bytes:
    """A moov-at-end file with its moov edited (nothing after it moves)."""
    _, offset, size, _ = find_box(data, "moov")
    assert offset + size == len(data), "this edit needs the moov at the end"
    return data[:offset] + edit_moov(data[offset:], edit)


def stco_to_co64(box_type: str, child: bytes) -> bytes | None:
    """Turn an stco box into the equivalent co64 box."""
    if box_type != "stco":
        return None
    (count,) = struct.unpack_from(">I", child, 12)
    offsets = struct.unpack_from(f">{count}I", child, 16)
    return box("co64", child[8:12] + struct.pack(f">I{count}Q", count, *offsets))


def mvhd_to_version_1(box_type: str, child: bytes) -> bytes | None:
    """Rewrite an mvhd box in version 1 (64-bit times and duration)."""
    if box_type != "mvhd":
        return None
    created, modified, timescale, duration = struct.unpack_from(">IIII", child, 12)
    rest = child[28:]
    return box(
        "mvhd",
        b"\x01\x00\x00\x00" + struct.pack(">QQIQ", created, modified, timescale, duration) + rest,
    )


def chunk_offsets(moov: bytes) -> list[tuple[str, list[int]]]:
    """(box type, offsets) of every stco/co64 table in a moov."""
    found: list[tuple[str, list[int]]] = []

    def collect(box_type: str, child: bytes) -> bytes | None:
        if box_type in ("stco", "co64"):
            (count,) = struct.unpack_from(">I", child, 12)
            wide = "Q" if box_type == "co64" else "I"
            found.append((box_type, list(struct.unpack_from(f">{count}{wide}", child, 16))))
        return None

    edit_moov(moov, collect)
    return found


def shift_chunk_offsets(delta: int) -> Callable[[str, bytes], bytes | None]:
    """An edit that moves every stco chunk offset by `delta`."""

    def edit(box_type: str, child: bytes) -> bytes | None:
        if box_type != "stco":
            return None
        (count,) = struct.unpack_from(">I", child, 12)
        offsets = [offset + delta for offset in struct.unpack_from(f">{count}I", child, 16)]
        return box("stco", child[8:12] + struct.pack(f">I{count}I", count, *offsets))

    return edit


def with_uuid_boxes(data: bytes) -> bytes:
    """A moov-at-end file with a uuid box after ftyp and another after the moov."""
    ftyp_size = find_box(data, "ftyp")[2]
    leading = box("uuid", b"clipgate-leading" + b"L" * 8)
    trailing = box("uuid", b"clipgate-trailin" + b"T" * 8)
    shifted = data[:ftyp_size] + leading + data[ftyp_size:]
    return replace_last_moov(shifted, shift_chunk_offsets(len(leading))) + trailing


def with_large_mdat(data: bytes) -> bytes:
    """Fold ffmpeg's 8-byte free box into a 16-byte (size == 1) mdat header."""
    _, free_offset, free_size, _ = find_box(data, "free")
    _, mdat_offset, mdat_size, _ = find_box(data, "mdat")
    assert free_size == 8
    assert free_offset + 8 == mdat_offset
    header = struct.pack(">I4sQ", 1, b"mdat", mdat_size + 8)
    return data[:free_offset] + header + data[mdat_offset + 8 :]


def sparse_near_4gib(data: bytes, path: Path) -> bytes:
    """Write `data` as a sparse file whose chunk offsets lie just under 2**32; return its moov.

    The media moves so that its last chunk starts a few bytes below 4 GiB: the offsets
    still fit stco, and any faststart shift pushes some past 32 bits.
    """
    ftyp = data[: find_box(data, "ftyp")[2]]
    _, mdat_offset, mdat_size, _ = find_box(data, "mdat")
    media = data[mdat_offset + 8 : mdat_offset + mdat_size]
    _, moov_offset, moov_size, _ = find_box(data, "moov")
    moov = data[moov_offset : moov_offset + moov_size]
    last_chunk = max(max(offsets) for _, offsets in chunk_offsets(moov))
    media_start = 2**32 - 16 - (last_chunk - (mdat_offset + 8))
    new_mdat_size = media_start + len(media) - len(ftyp)
    moov = edit_moov(moov, shift_chunk_offsets(media_start - (mdat_offset + 8)))
    with path.open("wb") as file:
        file.write(ftyp + struct.pack(">I4sQ", 1, b"mdat", new_mdat_size))
        file.seek(media_start)
        file.write(media)
        file.write(moov)
    return moov


def with_cmov(data: bytes) -> bytes:
    """A moov-at-end file whose moov holds only a compressed-moov box."""
    _, moov_offset, _, _ = find_box(data, "moov")
    cmov = box("cmov", box("dcom", b"zlib") + box("cmvd", b"\x00\x00\x10\x00" + b"x" * 32))
    return data[:moov_offset] + box("moov", cmov)


def with_mehd(data: bytes, fragment_duration: int) -> bytes:
    """A fragmented file with a version-1 mehd saying how long its fragments last."""
    _, moov_offset, moov_size, _ = find_box(data, "moov")
    mehd = box("mehd", b"\x01\x00\x00\x00" + struct.pack(">Q", fragment_duration))

    def add_mehd(box_type: str, child: bytes) -> bytes | None:
        return box("mvex", mehd + child[8:]) if box_type == "mvex" else None

    moov = edit_moov(data[moov_offset : moov_offset + moov_size], add_mehd)
    return data[:moov_offset] + moov + data[moov_offset + moov_size :]


def movie_timescale(data: bytes) -> int:
    """The mvhd timescale of a version-0 mvhd."""
    _, moov_offset, _, _ = find_box(data, "moov")
    mvhd = data.index(b"mvhd", moov_offset)
    timescale: int = struct.unpack_from(">I", data, mvhd + 16)[0]
    return timescale
