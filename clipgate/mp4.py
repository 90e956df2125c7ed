"""MP4 files: top-level box layout, faststart (moov before mdat), durations and thumbnails.

A browser can start playing an MP4 only once it has the `moov` box (the index of every
sample), so a streamable file keeps `moov` before `mdat` (the media). Encoders write it
last. Moving it to the front the usual way rewrites the whole file; here it is done by
inserting space at the head of the file instead, which on Linux ext4/xfs is a metadata
operation (`fallocate(FALLOC_FL_INSERT_RANGE)`): the media data is never read or written.

In-place relocation by insert-range, shift = N bytes (a multiple of the block size),
original size S:

    original        [ftyp][..][mdat .........][moov]
    1 marked        [ftyp][..][mdat .........][moov][cgfs]                      fsync
    2 inserted      [N bytes][ftyp][..][mdat ...][moov][cgfs]
    3 head-written  [ftyp][..][moov'][free ......][mdat ...][moov][cgfs]        fsync
    4 moov-renamed  [ftyp][..][moov'][free ......][mdat ...][free][uuid][cgfs]  fsync
                    (only when boxes other than padding follow the old moov)
    5 committed     [ftyp][..][moov'][free ......][mdat ...]                    fsync
                    (one truncate: the old moov and the marker, or the marker only)

moov' is the old moov with every chunk offset (stco/co64, and saio) moved by N; the
old leading boxes stay where they were, inside the new `free` box.

`cgfs` is clipgate's crash marker, appended before anything else happens: a box of its
own type holding a magic value, S, N, where the old moov starts and its header, a digest
of the original's first bytes, and a digest of the marker itself. Until the commit the
original's S bytes lie intact at offset 0 (step 1) or N (steps 2-4) with the marker
right after them, and only the marker says so: a crash at any step leaves a file that
`repair` puts back byte for byte (rename the moov back, collapse the N inserted bytes,
cut the marker). Nothing else is ever repaired, and nothing is guessed from zero bytes:
a file without an intact marker that matches it is only reported, never written.
`inspect` reports a marked file as an interrupted faststart; `repair` and `make_faststart`
are the only calls that write to it.

Where insert-range is not available, or an output path is given, the file is copied once
(copy_file_range) into a temp file next to the destination and renamed into place.
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import fcntl
import hashlib
import os
import stat
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar

from clipgate.errors import MP4Error

FaststartMethod = Literal["none", "insert-range", "copy"]
Checkpoint = Callable[[str], None]
_T = TypeVar("_T")

_FALLOC_FL_COLLAPSE_RANGE = 0x08
_FALLOC_FL_INSERT_RANGE = 0x20
_INSERT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENOTTY})
_COPY_RANGE_UNSUPPORTED = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})
_U32_MAX = 0xFFFFFFFF
_KNOWN_TOP_LEVEL = frozenset(
    {
        "ftyp", "styp", "moov", "mdat", "free", "skip", "wide", "pdin", "uuid", "moof",
        "mfra", "meta", "sidx", "ssix", "prft", "emsg", "pnot", "junk",
    }
)  # fmt: skip
_PADDING = frozenset({"free", "skip", "wide"})
# Only these hold, on the way down from moov, the boxes that carry file offsets.
_OFFSET_PATH = frozenset({"trak", "mdia", "minf", "stbl"})
_MAX_INDEX_BOX = 256 * 1024 * 1024
_MARKER_TYPE = b"cgfs"
_MARKER_MAGIC = b"clipgate.fs.v1\r\n"
# size, type, magic, original size, shift, old moov offset, old moov header, sample digest
_MARKER_FIELDS = ">I4s16sQQQ8s16s"
_DIGEST_SIZE = 16
_MARKER_SIZE = struct.calcsize(_MARKER_FIELDS) + _DIGEST_SIZE
_SAMPLE_LIMIT = 4096


@dataclass(frozen=True)
class Box:
    """One top-level box: its four-character type, where it starts, and its full size."""

    type: str
    offset: int
    size: int
    header_size: int = 8

    @property
    def end(self) -> int:
        """Offset of the first byte after this box."""
        return self.offset + self.size


@dataclass(frozen=True)
class Mp4Info:
    """What `inspect` learns from a file's boxes."""

    faststart: bool
    fragmented: bool
    duration_s: float
    boxes: list[Box]


@dataclass(frozen=True)
class FaststartResult:
    """What `make_faststart` did: `path` is the file that is now streamable."""

    path: Path
    changed: bool
    method: FaststartMethod
    bytes_written: int


class _Malformed(Exception):
    """A structural problem found while parsing; becomes an MP4Error naming the file."""


class _InsertRangeUnsupported(Exception):
    """The filesystem cannot insert a range; nothing has been changed."""


@dataclass(frozen=True)
class _Marker:
    """What faststart records at the end of a file before changing it: enough to undo it."""

    original_size: int
    shift: int
    moov_offset: int
    moov_header: bytes
    sample_digest: bytes

    @property
    def sample_size(self) -> int:
        """How many of the original's first bytes the sample digest covers."""
        return _sample_size(self.original_size, self.moov_offset)

    def encode(self) -> bytes:
        """The marker box, its own digest last."""
        fields = struct.pack(
            _MARKER_FIELDS, _MARKER_SIZE, _MARKER_TYPE, _MARKER_MAGIC, self.original_size,
            self.shift, self.moov_offset, self.moov_header, self.sample_digest,
        )  # fmt: skip
        return fields + _digest(fields)


@dataclass(frozen=True)
class _Interrupted:
    """A file a faststart left marked: the original's bytes lie intact from `start`."""

    marker: _Marker
    start: int


@dataclass(frozen=True)
class _Layout:
    """Top-level boxes of a file, or the interrupted faststart it is part-way through."""

    size: int
    boxes: list[Box]
    interrupted: _Interrupted | None = None


@dataclass(frozen=True)
class _Movie:
    """A readable, non-interrupted MP4: its layout, its moov, and what inspect reports."""

    layout: _Layout
    moov: Box
    moov_bytes: bytes
    info: Mp4Info

    @property
    def first_mdat(self) -> Box | None:
        """The first mdat box, if any."""
        return next((box for box in self.layout.boxes if box.type == "mdat"), None)


# ---------------------------------------------------------------- public API


def inspect(path: Path) -> Mp4Info:
    """Report faststart, fragmented, duration and top-level boxes, reading only headers."""
    with _about(path), _locked(path, exclusive=False) as fd:
        return _read_movie(fd, path).info


def repair(path: Path) -> bool:
    """Undo a faststart a crash interrupted, byte for byte; True if the file needed it.

    Only a file carrying clipgate's own intact marker is written; any other file is left
    as it is (False), and a damaged or mismatched marker is an MP4Error.
    """
    with _about(path):
        with _locked(path, exclusive=False) as fd:
            if _find_interruption(fd, os.fstat(fd).st_size) is None:
                return False
        with _locked(path, exclusive=True) as fd:
            return _repair_interrupted(fd) is not None


def make_faststart(path: Path, output: Path | None = None) -> FaststartResult:
    """Put moov before mdat: in place by default, or into `output` leaving `path` as is."""
    return relocate_moov(path, output)


def relocate_moov(
    path: Path,
    output: Path | None = None,
    *,
    method: Literal["auto", "copy"] = "auto",
    checkpoint: Checkpoint | None = None,
) -> FaststartResult:
    """`make_faststart`, with the copy path forced if `method` is "copy".

    `checkpoint` is called with the name of each step as it completes ("marked",
    "inserted", "head-written", "moov-renamed" when boxes follow the old moov, and
    "committed" in place; "copied", "replaced" on the copy path); an exception it raises
    stops the operation right there, as a crash would.
    """
    step = checkpoint or _no_checkpoint
    with _about(path):
        if output is None or _same_file(path, output):
            return _relocate_in_place(path, method, step)
        repair(path)
        return _relocate_to_output(path, output, step)


def thumbnail(clip: Path, output: Path, width: int = 120) -> Path:
    """Write the first frame of `clip` as a JPEG `width` pixels wide; returns `output`."""
    # Imported here, not at the top: `clipgate mp4 check/faststart` start faster without
    # subprocess and imageio_ffmpeg, which only thumbnails need.
    import subprocess

    from clipgate.ffmpeg import ffmpeg_exe

    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(clip), "-map", "0:v:0", "-frames:v", "1",
        "-vf", f"scale={width}:-2", "-q:v", "3", "-f", "mjpeg", str(partial),
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        made = completed.returncode == 0 and partial.is_file() and partial.stat().st_size > 0
        if made:
            os.replace(partial, output)
    except subprocess.TimeoutExpired:
        raise MP4Error(f"{clip}: cannot make a thumbnail: ffmpeg took over 120 s") from None
    finally:
        partial.unlink(missing_ok=True)
    if not made:
        reason = completed.stderr.strip().splitlines()[-1:] or ["no frame decoded"]
        raise MP4Error(f"{clip}: cannot make a thumbnail: {reason[0]}")
    return output


# ---------------------------------------------------------------- relocation


def _relocate_in_place(
    path: Path, method: Literal["auto", "copy"], checkpoint: Checkpoint
) -> FaststartResult:
    with _locked(path, exclusive=True) as fd:
        repair_written = _repair_interrupted(fd)
        movie = _read_movie(fd, path)
        if movie.info.faststart or movie.info.fragmented:
            if repair_written is None:
                return FaststartResult(path, False, "none", 0)
            return FaststartResult(path, True, "insert-range", repair_written)
        if method == "auto":
            with suppress(_InsertRangeUnsupported):
                written = _relocate_by_insert(fd, movie, checkpoint)
                return FaststartResult(path, True, "insert-range", written + (repair_written or 0))
        written = _write_copy(fd, _copy_pieces(fd, movie), path, checkpoint)
        return FaststartResult(path, True, "copy", written)


def _relocate_to_output(path: Path, output: Path, checkpoint: Checkpoint) -> FaststartResult:
    with _locked(path, exclusive=False) as fd:
        movie = _read_movie(fd, path)
        if movie.info.faststart or movie.info.fragmented:
            whole: list[_Piece] = [(0, movie.layout.size)]
            return FaststartResult(
                output, False, "copy", _write_copy(fd, whole, output, checkpoint)
            )
        written = _write_copy(fd, _copy_pieces(fd, movie), output, checkpoint)
        return FaststartResult(output, True, "copy", written)


def _relocate_by_insert(fd: int, movie: _Movie, checkpoint: Checkpoint) -> int:
    """Mark the file, insert a block-aligned gap at offset 0, write the new head into it."""
    first_mdat = _require(movie.first_mdat, "no mdat box")
    original_size = movie.layout.size
    leading = _leading_bytes(fd, movie)
    block = _block_size(fd)
    shift = block
    while True:
        moved = _Relocation(
            [(0, movie.moov.offset, shift), (movie.moov.end, movie.layout.size, shift)]
        )
        content = leading + _relocated_moov(movie.moov_bytes, movie.moov.header_size, moved)
        needed = _round_up(len(content) + 16, block)
        if needed <= shift:
            break
        shift = needed
    head = content + _box_header("free", shift + first_mdat.offset - len(content))
    sample = _sample_size(original_size, movie.moov.offset)
    marker = _Marker(
        original_size=original_size,
        shift=shift,
        moov_offset=movie.moov.offset,
        moov_header=_pread_exact(fd, 8, movie.moov.offset),
        sample_digest=_digest(_pread_exact(fd, sample, 0)),
    ).encode()
    only_padding_follows = all(
        box.type in _PADDING for box in movie.layout.boxes if box.offset > movie.moov.offset
    )

    try:
        _pwrite_all(fd, marker, original_size)
        os.fsync(fd)
    except OSError:
        with suppress(OSError):
            os.ftruncate(fd, original_size)
        raise
    checkpoint("marked")
    try:
        try:
            _fallocate(fd, _FALLOC_FL_INSERT_RANGE, 0, shift)
        except _InsertRangeUnsupported:
            os.ftruncate(fd, original_size)
            os.fsync(fd)
            raise
        checkpoint("inserted")
        _pwrite_all(fd, head, 0)
        os.fsync(fd)
        checkpoint("head-written")
        renamed = 0
        if only_padding_follows:
            committed_size = shift + movie.moov.offset
        else:
            _pwrite_all(fd, b"free", shift + movie.moov.offset + 4)
            os.fsync(fd)
            renamed = 4
            checkpoint("moov-renamed")
            committed_size = shift + original_size
        # One truncate drops the marker (and the old moov when it was last): the commit.
        os.ftruncate(fd, committed_size)
        os.fsync(fd)
        checkpoint("committed")
    except OSError:
        # A real I/O failure (disk full...): put the original back, as `repair` would.
        with suppress(OSError, _Malformed):
            _repair_interrupted(fd)
        raise
    return len(marker) + len(head) + renamed


_Piece: TypeAlias = bytes | tuple[int, int]


def _copy_pieces(fd: int, movie: _Movie) -> list[_Piece]:
    """The new file as byte strings and (source offset, length) ranges, moov first."""
    first_mdat = _require(movie.first_mdat, "no mdat box")
    leading_boxes = _leading_boxes(movie)
    tail = [
        box for box in movie.layout.boxes if box.offset >= first_mdat.offset and box != movie.moov
    ]
    leading = _leading_bytes(fd, movie)
    head_size = len(leading) + len(movie.moov_bytes)
    for _ in range(16):
        segments: list[tuple[int, int, int]] = []
        position = 0
        for box in leading_boxes:
            segments.append((box.offset, box.end, position - box.offset))
            position += box.size
        position = head_size
        for box in tail:
            segments.append((box.offset, box.end, position - box.offset))
            position += box.size
        moov = _relocated_moov(movie.moov_bytes, movie.moov.header_size, _Relocation(segments))
        if len(leading) + len(moov) == head_size:
            pieces: list[_Piece] = [leading + moov]
            pieces.extend((box.offset, box.size) for box in tail)
            return pieces
        head_size = len(leading) + len(moov)
    raise _Malformed("the moov size does not settle while relocating it")


def _write_copy(
    source_fd: int, pieces: Sequence[_Piece], destination: Path, checkpoint: Checkpoint
) -> int:
    """Write `pieces` to a temp file beside `destination`, then rename it into place."""
    import tempfile  # only the copy path needs it; see `thumbnail` on start-up time

    handle, temp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".faststart", dir=destination.parent
    )
    written = 0
    try:
        for piece in pieces:
            if isinstance(piece, bytes):
                _pwrite_all(handle, piece, written)
                written += len(piece)
            else:
                source_offset, length = piece
                _copy_range(source_fd, handle, source_offset, length, written)
                written += length
        os.fchmod(handle, stat.S_IMODE(os.fstat(source_fd).st_mode))
        os.fsync(handle)
        checkpoint("copied")
        os.replace(temp_name, destination)
    except BaseException:
        os.unlink(temp_name)
        raise
    finally:
        os.close(handle)
    _fsync_directory(destination.parent)
    checkpoint("replaced")
    return written


def _copy_range(
    source: int, target: int, source_offset: int, length: int, target_offset: int
) -> None:
    """Copy in the kernel: copy_file_range, else sendfile."""
    done = 0
    try:
        while done < length:
            count = os.copy_file_range(
                source, target, length - done, source_offset + done, target_offset + done
            )
            if count == 0:
                raise _Malformed(
                    f"the file ended inside bytes {source_offset}..{source_offset + length}"
                )
            done += count
    except OSError as error:
        if error.errno not in _COPY_RANGE_UNSUPPORTED:
            raise
        os.lseek(target, target_offset + done, os.SEEK_SET)
        while done < length:
            count = os.sendfile(target, source, source_offset + done, length - done)
            if count == 0:
                raise _Malformed(
                    f"the file ended inside bytes {source_offset}..{source_offset + length}"
                ) from None
            done += count


def _leading_boxes(movie: _Movie) -> list[Box]:
    first_mdat = _require(movie.first_mdat, "no mdat box")
    return [
        box
        for box in movie.layout.boxes
        if box.offset < first_mdat.offset and box.type not in _PADDING
    ]


def _leading_bytes(fd: int, movie: _Movie) -> bytes:
    """The non-padding boxes before mdat (ftyp...), which stay ahead of the moov."""
    return b"".join(_pread_exact(fd, box.size, box.offset) for box in _leading_boxes(movie))


# ---------------------------------------------------------------- crash repair


def _repair_interrupted(fd: int) -> int | None:
    """Put back the original a marked file holds; bytes written, or None if unmarked."""
    interrupted = _find_interruption(fd, os.fstat(fd).st_size)
    if interrupted is None:
        return None
    marker = interrupted.marker
    written = 0
    header_offset = interrupted.start + marker.moov_offset
    if os.pread(fd, 8, header_offset) != marker.moov_header:
        _pwrite_all(fd, marker.moov_header, header_offset)
        os.fsync(fd)
        written = len(marker.moov_header)
    if interrupted.start:
        try:
            _fallocate(fd, _FALLOC_FL_COLLAPSE_RANGE, 0, interrupted.start)
        except _InsertRangeUnsupported:
            raise _Malformed(
                "an interrupted faststart left this file marked, and this filesystem cannot "
                f"remove the {interrupted.start} bytes it inserted at the start (was the file "
                "copied elsewhere? repair it where the faststart ran)"
            ) from None
        os.fsync(fd)
    os.ftruncate(fd, marker.original_size)
    os.fsync(fd)
    return written


def _sample_size(original_size: int, moov_offset: int) -> int:
    """How many first bytes a marker's digest covers: none of the moov, renamed later."""
    return min(original_size, moov_offset, _SAMPLE_LIMIT)


def _find_interruption(fd: int, file_size: int) -> _Interrupted | None:
    """The interrupted faststart whose intact marker ends the file, if one does.

    A marker that is damaged, or that does not describe the bytes before it, is an error:
    such a file is not clipgate's to repair.
    """
    if file_size < _MARKER_SIZE:
        return None
    raw = _pread_exact(fd, _MARKER_SIZE, file_size - _MARKER_SIZE)
    if raw[4:8] != _MARKER_TYPE or raw[8:24] != _MARKER_MAGIC:
        return None
    fields, digest = raw[:-_DIGEST_SIZE], raw[-_DIGEST_SIZE:]
    size, _, _, original_size, shift, moov_offset, moov_header, sample_digest = struct.unpack(
        _MARKER_FIELDS, fields
    )
    if size != _MARKER_SIZE or digest != _digest(fields):
        raise _Malformed(
            "it ends with a damaged clipgate faststart marker (its checksum is wrong), "
            "so it cannot be repaired safely; it was left as it is"
        )
    marker = _Marker(original_size, shift, moov_offset, moov_header, sample_digest)
    start = file_size - _MARKER_SIZE - original_size
    renamed_header = moov_header[:4] + b"free"
    matches = (
        start in (0, shift)
        and moov_header[4:] == b"moov"
        and 0 < moov_offset <= original_size - 8
        and _digest(_pread_exact(fd, marker.sample_size, start)) == sample_digest
        and _pread_exact(fd, 8, start + moov_offset) in (moov_header, renamed_header)
    )
    if not matches:
        raise _Malformed(
            "it ends with a clipgate faststart marker that does not describe the bytes "
            "before it, so it cannot be repaired safely; it was left as it is"
        )
    return _Interrupted(marker, start)


# ---------------------------------------------------------------- reading


def _read_layout(fd: int) -> _Layout:
    file_size = os.fstat(fd).st_size
    if file_size == 0:
        raise _Malformed("not an MP4: the file is empty")
    interrupted = _find_interruption(fd, file_size)
    if interrupted is not None:
        return _Layout(file_size, [], interrupted)
    head = os.pread(fd, 8, 0)
    if len(head) < 8:
        raise _Malformed(f"not an MP4: only {len(head)} bytes long")
    if head == bytes(8):
        raise _Malformed("not an MP4: it starts with zero bytes, not an MP4 box")
    return _Layout(file_size, _read_top_level(fd, file_size))


def _read_top_level(fd: int, file_size: int, start: int = 0) -> list[Box]:
    """Walk the top-level boxes from `start` to the end by seeking from header to header."""
    boxes: list[Box] = []
    offset = start
    while offset < file_size:
        header = os.pread(fd, 16, offset)
        if len(header) < 8:
            raise _Malformed(f"the file ends inside a box header at offset {offset} (truncated)")
        size, raw_type = struct.unpack_from(">I4s", header)
        box_type = _box_type(raw_type)
        if not boxes and box_type not in _KNOWN_TOP_LEVEL:
            raise _Malformed(f"not an MP4: it starts with {header[:8]!r}, not an MP4 box")
        if not raw_type.isascii() or not all(32 <= byte < 127 for byte in raw_type):
            raise _Malformed(f"corrupt box header at offset {offset}: type {raw_type!r}")
        header_size = 8
        if size == 1:
            if len(header) < 16:
                raise _Malformed(
                    f"the file ends inside the '{box_type}' header at offset {offset} (truncated)"
                )
            (size,) = struct.unpack_from(">Q", header, 8)
            header_size = 16
        elif size == 0:
            size = file_size - offset
        if size < header_size:
            raise _Malformed(f"box '{box_type}' at offset {offset} has an impossible size {size}")
        if offset + size > file_size:
            raise _Malformed(
                f"box '{box_type}' at offset {offset} needs {size} bytes but the file ends "
                f"{file_size - offset} bytes after it starts (truncated)"
            )
        boxes.append(Box(box_type, offset, size, header_size))
        offset += size
    return boxes


def _read_movie(fd: int, path: Path) -> _Movie:
    layout = _read_layout(fd)
    if layout.interrupted is not None:
        raise _Malformed(
            f"interrupted faststart, run `clipgate mp4 repair {path}`: a clipgate faststart "
            "stopped part-way and marked the file; repair puts it back as it was"
        )
    moov = next((box for box in layout.boxes if box.type == "moov"), None)
    if moov is None:
        kinds = ", ".join(box.type for box in layout.boxes)
        raise _Malformed(f"no moov box, so nothing says how to play it (top-level boxes: {kinds})")
    if moov.size > _MAX_INDEX_BOX:
        raise _Malformed(f"the moov box is {moov.size} bytes, more than this tool reads")
    moov_bytes = _pread_exact(fd, moov.size, moov.offset)
    children = {
        child.type: child for child in _children(moov_bytes, moov.header_size, len(moov_bytes))
    }
    if "cmov" in children:
        raise _Malformed("the moov is compressed (cmov), which this tool cannot read or relocate")
    mvhd = _require(children.get("mvhd"), "the moov has no mvhd box")
    timescale, duration = _timescale_and_duration(moov_bytes[mvhd.payload : mvhd.end], "mvhd")
    fragmented = "mvex" in children or any(box.type == "moof" for box in layout.boxes)
    seconds = duration / timescale
    if fragmented:
        seconds = _fragmented_seconds(fd, layout, moov, moov_bytes, timescale, seconds)
    mdat = next((box for box in layout.boxes if box.type == "mdat"), None)
    faststart = mdat is None or moov.offset < mdat.offset
    info = Mp4Info(
        faststart=faststart, fragmented=fragmented, duration_s=seconds, boxes=layout.boxes
    )
    return _Movie(layout, moov, moov_bytes, info)


@dataclass(frozen=True)
class _Child:
    type: str
    start: int
    payload: int
    end: int


def _children(data: bytes, start: int, end: int) -> Iterator[_Child]:
    """The boxes inside a container's payload data[start:end]."""
    offset = start
    while offset < end:
        if end - offset < 8:
            raise _Malformed(f"{end - offset} stray bytes inside a box")
        size, raw_type = struct.unpack_from(">I4s", data, offset)
        box_type = _box_type(raw_type)
        header_size = 8
        if size == 1:
            if end - offset < 16:
                raise _Malformed(f"box '{box_type}' is cut inside its header")
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header_size = 16
        elif size == 0:
            size = end - offset
        if size < header_size or offset + size > end:
            raise _Malformed(f"box '{box_type}' does not fit inside its parent box")
        yield _Child(box_type, offset, offset + header_size, offset + size)
        offset += size


def _find(data: bytes, start: int, end: int, *path: str) -> _Child | None:
    """The first box along `path` under data[start:end]."""
    found: _Child | None = None
    for box_type in path:
        found = next(
            (child for child in _children(data, start, end) if child.type == box_type), None
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
        raise _Malformed(f"{name} box is too short or has unknown version {version}")
    timescale, duration = struct.unpack_from(layout[0], payload, layout[1])
    if timescale == 0:
        raise _Malformed(f"{name} box has a timescale of 0")
    unknown = _U32_MAX if version == 0 else 0xFFFFFFFFFFFFFFFF
    return timescale, 0 if duration == unknown else duration


def _full_box_int(payload: bytes, name: str) -> int:
    """The single version-sized integer after version/flags (mehd, tfdt)."""
    if len(payload) >= 12 and payload[0] == 1:
        value: int = struct.unpack_from(">Q", payload, 4)[0]
    elif len(payload) >= 8:
        value = struct.unpack_from(">I", payload, 4)[0]
    else:
        raise _Malformed(f"{name} box is too short")
    return value


def _fragmented_seconds(
    fd: int,
    layout: _Layout,
    moov_box: Box,
    moov: bytes,
    movie_timescale: int,
    moov_seconds: float,
) -> float:
    """Duration of a fragmented file: mehd if it says, else the end of the last fragment."""
    mvex = _find(moov, moov_box.header_size, len(moov), "mvex")
    if mvex is not None:
        mehd = _find(moov, mvex.payload, mvex.end, "mehd")
        if mehd is not None:
            fragment_duration = _full_box_int(moov[mehd.payload : mehd.end], "mehd")
            if fragment_duration:
                return fragment_duration / movie_timescale
    timescales: dict[int, int] = {}
    default_durations: dict[int, int] = {}
    for trak in _children(moov, moov_box.header_size, len(moov)):
        if trak.type == "trak":
            tkhd = _require(_find(moov, trak.payload, trak.end, "tkhd"), "trak has no tkhd box")
            track_id = _track_id(moov[tkhd.payload : tkhd.end], "tkhd")
            mdhd = _require(
                _find(moov, trak.payload, trak.end, "mdia", "mdhd"), "trak has no mdhd box"
            )
            timescales[track_id] = _timescale_and_duration(moov[mdhd.payload : mdhd.end], "mdhd")[0]
        elif trak.type == "mvex":
            for trex in _children(moov, trak.payload, trak.end):
                if trex.type == "trex" and trex.end - trex.payload >= 24:
                    track_id, _, duration = struct.unpack_from(">III", moov, trex.payload + 4)
                    default_durations[track_id] = duration
    track_ends: dict[int, int] = {}
    for moof in (box for box in layout.boxes if box.type == "moof"):
        if moof.size > _MAX_INDEX_BOX:
            raise _Malformed(f"the moof box at offset {moof.offset} is too large")
        data = _pread_exact(fd, moof.size, moof.offset)
        for traf in _children(data, moof.header_size, len(data)):
            if traf.type == "traf":
                track_id, end = _traf_end(data, traf, track_ends, default_durations)
                track_ends[track_id] = end
    seconds = [end / timescales[track] for track, end in track_ends.items() if track in timescales]
    return max([moov_seconds, *seconds])


def _track_id(payload: bytes, name: str) -> int:
    offset = 20 if payload[:1] == b"\x01" else 12
    if len(payload) < offset + 4:
        raise _Malformed(f"{name} box is too short")
    track_id: int = struct.unpack_from(">I", payload, offset)[0]
    return track_id


def _traf_end(
    data: bytes, traf: _Child, track_ends: dict[int, int], default_durations: dict[int, int]
) -> tuple[int, int]:
    """Track id and decode time at the end of one track fragment."""
    tfhd = _require(_find(data, traf.payload, traf.end, "tfhd"), "traf has no tfhd box")
    payload = data[tfhd.payload : tfhd.end]
    if len(payload) < 8:
        raise _Malformed("tfhd box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    (track_id,) = struct.unpack_from(">I", payload, 4)
    default_duration = default_durations.get(track_id, 0)
    if flags & 0x08:
        position = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        if len(payload) < position + 4:
            raise _Malformed("tfhd box is too short for its flags")
        (default_duration,) = struct.unpack_from(">I", payload, position)
    end = track_ends.get(track_id, 0)
    for child in _children(data, traf.payload, traf.end):
        if child.type == "tfdt":
            end = _full_box_int(data[child.payload : child.end], "tfdt")
        elif child.type == "trun":
            end += _trun_duration(data[child.payload : child.end], default_duration)
    return track_id, end


def _trun_duration(payload: bytes, default_duration: int) -> int:
    if len(payload) < 8:
        raise _Malformed("trun box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    count: int = struct.unpack_from(">I", payload, 4)[0]
    if not flags & 0x100:
        return count * default_duration
    position = 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    entry_size = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if position + count * entry_size > len(payload):
        raise _Malformed(f"trun box lists {count} samples but is too short to hold them")
    return sum(
        struct.unpack_from(">I", payload, position + index * entry_size)[0]
        for index in range(count)
    )


# ---------------------------------------------------------------- moov rewriting


class _Relocation:
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
        raise _Malformed(f"a sample offset ({offset}) points outside the media data")


def _relocated_moov(moov: bytes, header_size: int, relocate: _Relocation) -> bytes:
    return _box_bytes("moov", _relocated_children(moov, header_size, len(moov), relocate))


def _relocated_children(data: bytes, start: int, end: int, relocate: _Relocation) -> bytes:
    parts: list[bytes] = []
    for child in _children(data, start, end):
        payload = data[child.payload : child.end]
        if child.type in _OFFSET_PATH:
            parts.append(
                _box_bytes(
                    child.type, _relocated_children(data, child.payload, child.end, relocate)
                )
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
        raise _Malformed(f"{name} box is too short")
    (count,) = struct.unpack_from(">I", payload, position)
    width = 8 if wide else 4
    if position + 4 + count * width > len(payload):
        raise _Malformed(f"{name} box lists {count} offsets but is too short to hold them")
    return struct.unpack_from(f">{count}{'Q' if wide else 'I'}", payload, position + 4)


def _relocated_chunk_offsets(box_type: str, payload: bytes, relocate: _Relocation) -> bytes:
    """stco/co64 with every chunk offset moved; stco becomes co64 if one passes 32 bits."""
    moved = [relocate(offset) for offset in _offset_table(payload, 4, box_type == "co64", box_type)]
    if box_type == "stco" and all(offset <= _U32_MAX for offset in moved):
        return _box_bytes("stco", payload[:4] + struct.pack(f">I{len(moved)}I", len(moved), *moved))
    return _box_bytes("co64", payload[:4] + struct.pack(f">I{len(moved)}Q", len(moved), *moved))


def _relocated_aux_offsets(payload: bytes, relocate: _Relocation) -> bytes:
    """saio (sample auxiliary info, e.g. CENC) holds absolute offsets inside a moov too."""
    if len(payload) < 4:
        raise _Malformed("saio box is too short")
    version, flags = payload[0], payload[1:4]
    position = 4 + (8 if int.from_bytes(flags, "big") & 0x01 else 0)
    moved = [relocate(offset) for offset in _offset_table(payload, position, version == 1, "saio")]
    if version == 0 and any(offset > _U32_MAX for offset in moved):
        version = 1
    table = struct.pack(f">I{len(moved)}{'Q' if version == 1 else 'I'}", len(moved), *moved)
    return _box_bytes("saio", bytes([version]) + flags + payload[4:position] + table)


# ---------------------------------------------------------------- low level


def _box_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def _box_header(box_type: str, size: int) -> bytes:
    if size <= _U32_MAX:
        return struct.pack(">I4s", size, box_type.encode("latin-1"))
    return struct.pack(">I4sQ", 1, box_type.encode("latin-1"), size)


def _box_bytes(box_type: str, payload: bytes) -> bytes:
    size = len(payload) + 8
    if size > _U32_MAX:
        size += 8
    return _box_header(box_type, size) + payload


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _require(value: _T | None, problem: str) -> _T:
    if value is None:
        raise _Malformed(problem)
    return value


def _no_checkpoint(step: str) -> None:
    """Default checkpoint: every step just goes on."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:_DIGEST_SIZE]


def _block_size(fd: int) -> int:
    return max(os.fstatvfs(fd).f_bsize, 512)


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) through libc; `_InsertRangeUnsupported` where the fs cannot do `mode`."""
    function = _libc_fallocate()
    if function is None:
        raise _InsertRangeUnsupported
    if function(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        if code in _INSERT_UNSUPPORTED:
            raise _InsertRangeUnsupported
        raise OSError(code, os.strerror(code))


@cache
def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "fallocate64", None) or getattr(libc, "fallocate", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    typed: Callable[[int, int, int, int], int] = function
    return typed


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise _Malformed(f"the file ends inside bytes {offset}..{offset + size} (truncated)")
        data += more
    return data


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        count = os.pwrite(fd, view, offset)
        view = view[count:]
        offset += count


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _same_file(path: Path, other: Path) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


@contextmanager
def _locked(path: Path, *, exclusive: bool) -> Iterator[int]:
    """Open `path` under flock, so a second faststart or check waits for the first.

    A copy-path faststart replaces the file; a waiter that then holds a lock on the old,
    replaced inode reopens the path.
    """
    # Checked before opening, and opened non-blocking, because opening a FIFO for
    # reading waits for a writer and opening a device can have effects of its own.
    flags = (os.O_RDWR if exclusive else os.O_RDONLY) | os.O_CLOEXEC | os.O_NONBLOCK
    while True:
        _require_regular_file(os.stat(path).st_mode)
        fd = os.open(path, flags)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            opened = os.fstat(fd)
            _require_regular_file(opened.st_mode)
            current = os.stat(path)
        except BaseException:
            os.close(fd)
            raise
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _require_regular_file(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    raise _Malformed(f"not a regular file but {kind}; only regular MP4 files are read")


@contextmanager
def _about(path: Path) -> Iterator[None]:
    """Turn parse and I/O failures into an MP4Error that names the file."""
    try:
        yield
    except _Malformed as problem:
        raise MP4Error(f"{path}: {problem}") from None
    except OSError as error:
        other_file = f" ({error.filename})" if error.filename not in (None, str(path)) else ""
        raise MP4Error(f"{path}: {error.strerror or error}{other_file}") from error
