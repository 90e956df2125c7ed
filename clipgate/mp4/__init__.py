"""MP4 files: top-level box layout, faststart (moov before mdat), crash repair, thumbnails.

    boxes          reading the top-level boxes and the moov: `inspect`
    relocation     faststart, in place or into another file, and what is durable when:
                   `make_faststart`, `relocate_moov`, `replace_faststart`
    recovery       the marker an interrupted in-place faststart leaves: `repair`
    chunk_offsets  rewriting the file offsets inside a moov that moves
    thumbnails     first-frame JPEGs: `thumbnail`
    files          locking, exact reads and writes, fallocate, cachestat, renameat2

Call these through the package (`mp4.make_faststart(...)`), so that a name replaced on
it (as the crash tests do) is the one every caller gets. The records are NamedTuples,
not dataclasses: importing dataclasses (inspect, ast, dis) and building them would be a
fifth of the start-up of `clipgate mp4 check`.
"""

from __future__ import annotations

from clipgate.errors import MP4Error
from clipgate.mp4.boxes import Box, Mp4Info, inspect
from clipgate.mp4.recovery import repair
from clipgate.mp4.relocation import (
    Checkpoint,
    FaststartMethod,
    FaststartResult,
    MethodChoice,
    make_faststart,
    relocate_moov,
    replace_faststart,
)
from clipgate.mp4.thumbnails import thumbnail

__all__ = [
    "Box",
    "Checkpoint",
    "FaststartMethod",
    "FaststartResult",
    "MP4Error",
    "MethodChoice",
    "Mp4Info",
    "inspect",
    "make_faststart",
    "relocate_moov",
    "repair",
    "replace_faststart",
    "thumbnail",
]
