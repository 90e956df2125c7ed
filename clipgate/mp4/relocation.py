"""Faststart: moving the moov before the mdat, in place or into another file.

A browser can start playing an MP4 only once it has the `moov` box (the index of every
sample), so a streamable file keeps `moov` before `mdat` (the media). Encoders write it
last. A file already faststart, or fragmented, is never written. Otherwise one of three
ways is taken, chosen per file (`relocate_moov(method=...)` forces one):

insert-range, in place, for a file already on disk (no page of it waits for writeback):
space is inserted at the head of the file (`fallocate(FALLOC_FL_INSERT_RANGE)`, a
metadata operation on ext4 and xfs) and the new head is written into it; the media is
never read or written. Durable when the call returns. Shift N bytes (a multiple of the
block size), original size S:

    original        [ftyp][..][mdat .........][moov]
    1 marked        [ftyp][..][mdat .........][moov][cgfs]                      fsync
    2 inserted      [N bytes][ftyp][..][mdat ...][moov][cgfs]
    3 head-written  [ftyp][..][moov'][free ......][mdat ...][moov][cgfs]        fsync
    4 moov-renamed  [ftyp][..][moov'][free ......][mdat ...][free][uuid][cgfs]  fsync
                    (only when boxes other than padding follow the old moov)
    5 committed     [ftyp][..][moov'][free ......][mdat ...]                    fsync
                    (one truncate: the old moov and the marker, or the marker only)

moov' is the old moov with every chunk offset moved by N; the old leading boxes stay
where they were, inside the new `free` box. A crash before the commit leaves the marked
file that `recovery.repair` (or the next faststart) puts back byte for byte.

copy-unsynced, for a freshly written file (pages not yet written back, as right after an
encode or a download): inserting a range there would first make the kernel write the
whole file back, so the file is instead written once, moov first, into a temp file
beside it (copy_file_range, in the page cache), which then takes the file's name; no
fsync. Nothing becomes less durable than it was: the new file is on disk once the kernel
writes it back (vm.dirty_expire_centisecs, 30 s by default) or at the next sync, as the
fresh original would have been, and the original's pages are dropped unwritten, so the
clip still goes to the disk once. Until the name changes hands the original is untouched
(a crash leaves at most a `.NAME.*.faststart` temp file beside it). The two names are
exchanged (renameat2 RENAME_EXCHANGE) and the old file removed, rather than renamed
over: ext4 starts writing back a file renamed over another (auto_da_alloc), at the cost
of the whole copy, to keep a file on disk from being replaced by one that is not, and
the file replaced here was not on disk either. So until writeback a crash can leave the
name short or empty, as it could have left the fresh original (on ext4 a file whose
delayed allocation has not happened yet comes back empty).

copy, the same copy made durable: fsynced before the rename and the folder after it.
Taken in place for a file on disk where insert-range is not available (tmpfs, ...).

With an output path the source is never changed, and the copy is fsynced (copy) only if
it replaces a file that is on disk; a new output, or one not yet written back itself,
gets copy-unsynced.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Literal, NamedTuple, TypeAlias

from clipgate.mp4.boxes import PADDING, Box, Movie, box_header, read_movie
from clipgate.mp4.chunk_offsets import Relocation, relocated_moov
from clipgate.mp4.files import (
    FALLOC_FL_INSERT_RANGE,
    Malformed,
    RangeUnsupported,
    about,
    exchange_names,
    fallocate,
    fsync_directory,
    locked,
    pread_exact,
    pwrite_all,
    require,
    same_file,
    written_back,
)
from clipgate.mp4.recovery import Marker, repair, repair_interrupted

FaststartMethod = Literal["none", "insert-range", "copy", "copy-unsynced"]
MethodChoice = Literal["auto", "insert-range", "copy", "copy-unsynced"]
Checkpoint = Callable[[str], None]
# Writes that make up a copy, applied in order: at this offset, these bytes, or the
# source's (offset, length) range.
_Piece: TypeAlias = tuple[int, bytes | tuple[int, int]]

_COPY_RANGE_UNSUPPORTED = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})


class FaststartResult(NamedTuple):
    """What `make_faststart` did: `path` is the file that is now streamable."""

    path: Path
    changed: bool
    method: FaststartMethod
    bytes_written: int


def make_faststart(path: Path, output: Path | None = None) -> FaststartResult:
    """Put moov before mdat: in place by default, or into `output` leaving `path` as is."""
    return relocate_moov(path, output)


def replace_faststart(source: Path, destination: Path) -> FaststartResult:
    """`os.replace(source, destination)`, except that the file at `destination` is faststart.

    A source already faststart (or fragmented) is renamed and nothing is written;
    otherwise it is written once, moov first, to `destination` and then removed. Meant for
    a file just downloaded or encoded next to its destination: the clip lands streamable
    without a second write of it in place. A source that is no readable MP4 is an MP4Error
    and stays where it is.
    """
    with about(source):
        with locked(source, exclusive=False) as fd:
            movie = read_movie(fd, source)
            if movie.info.faststart or movie.info.fragmented:
                relocated = None
            else:
                relocated = _relocate_to_output(fd, movie, destination, "auto", _no_checkpoint)
        if relocated is None:
            os.replace(source, destination)
            return FaststartResult(destination, False, "none", 0)
        os.unlink(source)
        return relocated


def relocate_moov(
    path: Path,
    output: Path | None = None,
    *,
    method: MethodChoice = "auto",
    checkpoint: Checkpoint | None = None,
) -> FaststartResult:
    """`make_faststart`, with one way forced unless `method` is "auto" (see the module).

    "insert-range" works in place only, and falls back to "copy" where the filesystem
    cannot insert a range. `checkpoint` is called with the name of each step as it
    completes ("marked", "inserted", "head-written", "moov-renamed" when boxes follow the
    old moov, and "committed" by insert-range; "copied", "replaced" by the copies); an
    exception it raises stops the operation right there, as a crash would.
    """
    step = checkpoint or _no_checkpoint
    with about(path):
        if output is None or same_file(path, output):
            return _relocate_in_place(path, method, step)
        if method == "insert-range":
            raise ValueError("insert-range relocates in place only; give no output")
        repair(path)
        with locked(path, exclusive=False) as fd:
            return _relocate_to_output(fd, read_movie(fd, path), output, method, step)


def _relocate_in_place(path: Path, method: MethodChoice, checkpoint: Checkpoint) -> FaststartResult:
    with locked(path, exclusive=True) as fd:
        repair_written = repair_interrupted(fd)
        movie = read_movie(fd, path)
        if movie.info.faststart or movie.info.fragmented:
            if repair_written is None:
                return FaststartResult(path, False, "none", 0)
            return FaststartResult(path, True, "insert-range", repair_written)
        if method == "auto":
            method = "insert-range" if written_back(fd) else "copy-unsynced"
        if method == "insert-range":
            with suppress(RangeUnsupported):
                written = _relocate_by_insert(fd, movie, checkpoint)
                return FaststartResult(path, True, "insert-range", written + (repair_written or 0))
            method = "copy"
        durable = method == "copy"
        written = _write_copy(fd, _copy_pieces(fd, movie), path, checkpoint, durable=durable)
        return FaststartResult(path, True, "copy" if durable else "copy-unsynced", written)


def _relocate_to_output(
    fd: int, movie: Movie, output: Path, method: MethodChoice, checkpoint: Checkpoint
) -> FaststartResult:
    """Write `movie`, open as `fd`, to `output` moov first; `fd` itself is only read."""
    durable = method == "copy" or (method == "auto" and _replaces_a_file_on_disk(output))
    done: FaststartMethod = "copy" if durable else "copy-unsynced"
    if movie.info.faststart or movie.info.fragmented:
        whole: list[_Piece] = [(0, (0, movie.layout.size))]
        written = _write_copy(fd, whole, output, checkpoint, durable=durable)
        return FaststartResult(output, False, done, written)
    written = _write_copy(fd, _copy_pieces(fd, movie), output, checkpoint, durable=durable)
    return FaststartResult(output, True, done, written)


def _replaces_a_file_on_disk(destination: Path) -> bool:
    """Whether renaming onto `destination` would replace a file whose pages are on disk.

    Anything there that cannot be asked about counts as on disk, the careful answer.
    """
    try:
        if not stat.S_ISREG(os.stat(destination).st_mode):
            return True
        handle = os.open(destination, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        return written_back(handle)
    finally:
        os.close(handle)


class _Plan(NamedTuple):
    """Where a faststart puts everything, in place or in a copy (see the module's diagram).

    The media moves by `shift` bytes (whole blocks); `head` (the leading boxes, moov' and
    a free box up to the first mdat) covers the start; the old moov is cut off the end,
    or renamed `free` if boxes follow it.
    """

    shift: int
    head: bytes
    only_padding_follows: bool


def _plan(fd: int, movie: Movie) -> _Plan:
    first_mdat = require(movie.first_mdat, "no mdat box")
    leading = _leading_bytes(fd, movie)
    block = max(os.fstatvfs(fd).f_bsize, 512)
    shift = block
    while True:
        moved = Relocation(
            [(0, movie.moov.offset, shift), (movie.moov.end, movie.layout.size, shift)]
        )
        content = leading + relocated_moov(movie.moov_bytes, movie.moov.header_size, moved)
        needed = _round_up(len(content) + 16, block)
        if needed <= shift:
            break
        shift = needed
    head = content + box_header("free", shift + first_mdat.offset - len(content))
    only_padding_follows = all(
        box.type in PADDING for box in movie.layout.boxes if box.offset > movie.moov.offset
    )
    return _Plan(shift, head, only_padding_follows)


def _relocate_by_insert(fd: int, movie: Movie, checkpoint: Checkpoint) -> int:
    """Mark the file, insert a block-aligned gap at offset 0, write the new head into it."""
    plan = _plan(fd, movie)
    original_size = movie.layout.size
    marker = Marker.describing(fd, original_size, plan.shift, movie.moov.offset).encode()

    try:
        pwrite_all(fd, marker, original_size)
        os.fsync(fd)
    except OSError:
        with suppress(OSError):
            os.ftruncate(fd, original_size)
        raise
    checkpoint("marked")
    try:
        try:
            fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, plan.shift)
        except RangeUnsupported:
            os.ftruncate(fd, original_size)
            os.fsync(fd)
            raise
        checkpoint("inserted")
        pwrite_all(fd, plan.head, 0)
        os.fsync(fd)
        checkpoint("head-written")
        renamed = 0
        if plan.only_padding_follows:
            committed_size = plan.shift + movie.moov.offset
        else:
            pwrite_all(fd, b"free", plan.shift + movie.moov.offset + 4)
            os.fsync(fd)
            renamed = 4
            checkpoint("moov-renamed")
            committed_size = plan.shift + original_size
        # One truncate drops the marker (and the old moov when it was last): the commit.
        os.ftruncate(fd, committed_size)
        os.fsync(fd)
        checkpoint("committed")
    except OSError:
        # A real I/O failure (disk full...): put the original back, as `repair` would.
        with suppress(OSError, Malformed):
            repair_interrupted(fd)
        raise
    return len(marker) + len(plan.head) + renamed


def _copy_pieces(fd: int, movie: Movie) -> list[_Piece]:
    """The layout insert-range makes, as writes to a new file: the media first, whole.

    The media lands at the same place within each page as in the source, so the kernel
    moves whole pages; a copy at another page offset takes nearly twice as long.
    """
    plan = _plan(fd, movie)
    kept = movie.moov.offset if plan.only_padding_follows else movie.layout.size
    pieces: list[_Piece] = [(plan.shift, (0, kept))]
    if not plan.only_padding_follows:
        pieces.append((plan.shift + movie.moov.offset + 4, b"free"))
    pieces.append((0, plan.head))
    return pieces


def _write_copy(
    source_fd: int,
    pieces: Sequence[_Piece],
    destination: Path,
    checkpoint: Checkpoint,
    *,
    durable: bool,
) -> int:
    """Write `pieces` to a temp file beside `destination`, then rename it into place.

    `durable`: fsync the copy before the rename and the folder after it. Returns the size
    of the new file: a copy writes all of it.
    """
    # Imported here: `clipgate mp4 check` starts faster without it, and only copies use it.
    import tempfile

    handle, temp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".faststart", dir=destination.parent
    )
    written = 0
    try:
        for offset, piece in pieces:
            if isinstance(piece, bytes):
                pwrite_all(handle, piece, offset)
                written = max(written, offset + len(piece))
            else:
                source_offset, length = piece
                _copy_range(source_fd, handle, source_offset, length, offset)
                written = max(written, offset + length)
        os.fchmod(handle, stat.S_IMODE(os.fstat(source_fd).st_mode))
        if durable:
            os.fsync(handle)
        checkpoint("copied")
        _put_in_place(Path(temp_name), destination, durable=durable)
    except BaseException:
        os.unlink(temp_name)
        raise
    finally:
        os.close(handle)
    if durable:
        fsync_directory(destination.parent)
    checkpoint("replaced")
    return written


def _put_in_place(temp: Path, destination: Path, *, durable: bool) -> None:
    """Rename `temp` over `destination`.

    ext4 (auto_da_alloc) starts writing back a file renamed over another without fsync,
    which costs as much as the whole copy: a guard for a file that was on disk, and an
    unsynced copy replaces one that was not. Exchanging the two names and removing the
    old file does the same without it.
    """
    if not durable and exchange_names(temp, destination):
        os.unlink(temp)
    else:
        os.replace(temp, destination)


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
                raise Malformed(
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
                raise Malformed(
                    f"the file ended inside bytes {source_offset}..{source_offset + length}"
                ) from None
            done += count


def _leading_boxes(movie: Movie) -> list[Box]:
    first_mdat = require(movie.first_mdat, "no mdat box")
    return [
        box
        for box in movie.layout.boxes
        if box.offset < first_mdat.offset and box.type not in PADDING
    ]


def _leading_bytes(fd: int, movie: Movie) -> bytes:
    """The non-padding boxes before mdat (ftyp...), which stay ahead of the moov."""
    return b"".join(pread_exact(fd, box.size, box.offset) for box in _leading_boxes(movie))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _no_checkpoint(step: str) -> None:
    """Default checkpoint: every step just goes on."""
