"""Crash repair: the marker an in-place faststart leaves while it works, and `repair`.

`cgfs` is clipgate's crash marker, appended by the insert-range faststart before it
changes anything else: a box of its own type holding a magic value, the original size
S, the shift N, where the old moov starts and its header, a digest of the original's
first bytes, and a digest of the marker itself. Until the commit the original's S bytes
lie intact at offset 0 or N with the marker right after them, and only the marker says
so: a crash at any step leaves a file that `repair` puts back byte for byte (rename the
moov back, collapse the N inserted bytes, cut the marker).

Nothing else is ever repaired, and nothing is guessed from zero bytes: a file without an
intact marker that matches it is only reported, never written. `inspect` reports a
marked file as an interrupted faststart; `repair` and `make_faststart` are the only calls
that write to it. The faststart that copies leaves no marker: until its rename the file
is untouched.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

from clipgate.mp4.files import (
    FALLOC_FL_COLLAPSE_RANGE,
    Malformed,
    RangeUnsupported,
    about,
    fallocate,
    locked,
    pread_exact,
    pwrite_all,
)

_MARKER_TYPE = b"cgfs"
_MARKER_MAGIC = b"clipgate.fs.v1\r\n"
# size, type, magic, original size, shift, old moov offset, old moov header, sample digest
_MARKER_FIELDS = ">I4s16sQQQ8s16s"
_DIGEST_SIZE = 16
MARKER_SIZE = struct.calcsize(_MARKER_FIELDS) + _DIGEST_SIZE
_SAMPLE_LIMIT = 4096


class Marker(NamedTuple):
    """What faststart records at the end of a file before changing it: enough to undo it."""

    original_size: int
    shift: int
    moov_offset: int
    moov_header: bytes
    sample_digest: bytes

    @classmethod
    def describing(cls, fd: int, original_size: int, shift: int, moov_offset: int) -> Marker:
        """The marker for shifting the unmarked file open as `fd` by `shift` bytes."""
        sample = sample_size(original_size, moov_offset)
        return cls(
            original_size=original_size,
            shift=shift,
            moov_offset=moov_offset,
            moov_header=pread_exact(fd, 8, moov_offset),
            sample_digest=_digest(pread_exact(fd, sample, 0)),
        )

    @property
    def sample_size(self) -> int:
        """How many of the original's first bytes the sample digest covers."""
        return sample_size(self.original_size, self.moov_offset)

    def encode(self) -> bytes:
        """The marker box, its own digest last."""
        fields = struct.pack(
            _MARKER_FIELDS, MARKER_SIZE, _MARKER_TYPE, _MARKER_MAGIC, self.original_size,
            self.shift, self.moov_offset, self.moov_header, self.sample_digest,
        )  # fmt: skip
        return fields + _digest(fields)


class Interrupted(NamedTuple):
    """A file a faststart left marked: the original's bytes lie intact from `start`."""

    marker: Marker
    start: int


def repair(path: Path) -> bool:
    """Undo a faststart a crash interrupted, byte for byte; True if the file needed it.

    Only a file carrying clipgate's own intact marker is written; any other file is left
    as it is (False), and a damaged or mismatched marker is an MP4Error.
    """
    with about(path):
        with locked(path, exclusive=False) as fd:
            if find_interruption(fd, os.fstat(fd).st_size) is None:
                return False
        with locked(path, exclusive=True) as fd:
            return repair_interrupted(fd) is not None


def repair_interrupted(fd: int) -> int | None:
    """Put back the original a marked file holds; bytes written, or None if unmarked."""
    interrupted = find_interruption(fd, os.fstat(fd).st_size)
    if interrupted is None:
        return None
    marker = interrupted.marker
    written = 0
    header_offset = interrupted.start + marker.moov_offset
    if os.pread(fd, 8, header_offset) != marker.moov_header:
        pwrite_all(fd, marker.moov_header, header_offset)
        os.fsync(fd)
        written = len(marker.moov_header)
    if interrupted.start:
        try:
            fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, interrupted.start)
        except RangeUnsupported:
            raise Malformed(
                "an interrupted faststart left this file marked, and this filesystem cannot "
                f"remove the {interrupted.start} bytes it inserted at the start (was the file "
                "copied elsewhere? repair it where the faststart ran)"
            ) from None
        os.fsync(fd)
    os.ftruncate(fd, marker.original_size)
    os.fsync(fd)
    return written


def sample_size(original_size: int, moov_offset: int) -> int:
    """How many first bytes a marker's digest covers: none of the moov, renamed later."""
    return min(original_size, moov_offset, _SAMPLE_LIMIT)


def find_interruption(fd: int, file_size: int) -> Interrupted | None:
    """The interrupted faststart whose intact marker ends the file, if one does.

    A marker that is damaged, or that does not describe the bytes before it, is an error:
    such a file is not clipgate's to repair.
    """
    if file_size < MARKER_SIZE:
        return None
    raw = pread_exact(fd, MARKER_SIZE, file_size - MARKER_SIZE)
    if raw[4:8] != _MARKER_TYPE or raw[8:24] != _MARKER_MAGIC:
        return None
    fields, digest = raw[:-_DIGEST_SIZE], raw[-_DIGEST_SIZE:]
    size, _, _, original_size, shift, moov_offset, moov_header, sample_digest = struct.unpack(
        _MARKER_FIELDS, fields
    )
    if size != MARKER_SIZE or digest != _digest(fields):
        raise Malformed(
            "it ends with a damaged clipgate faststart marker (its checksum is wrong), "
            "so it cannot be repaired safely; it was left as it is"
        )
    marker = Marker(original_size, shift, moov_offset, moov_header, sample_digest)
    start = file_size - MARKER_SIZE - original_size
    renamed_header = moov_header[:4] + b"free"
    matches = (
        start in (0, shift)
        and moov_header[4:] == b"moov"
        and 0 < moov_offset <= original_size - 8
        and _digest(pread_exact(fd, marker.sample_size, start)) == sample_digest
        and pread_exact(fd, 8, start + moov_offset) in (moov_header, renamed_header)
    )
    if not matches:
        raise Malformed(
            "it ends with a clipgate faststart marker that does not describe the bytes "
            "before it, so it cannot be repaired safely; it was left as it is"
        )
    return Interrupted(marker, start)


def _digest(data: bytes) -> bytes:
    # Imported here: only a marker needs it, and loading OpenSSL for it would be a tenth of
    # the start-up of `clipgate mp4 check`, which on an unmarked file never digests.
    import hashlib

    return hashlib.sha256(data).digest()[:_DIGEST_SIZE]
