"""Low-level file access for the MP4 modules: locking, exact I/O, fallocate, cachestat, renameat2.

Every call opens a path under `locked` (flock, regular files only) and turns parse and
I/O problems into an MP4Error naming the file with `about`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TypeVar

from clipgate.errors import MP4Error

FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_INSERT_RANGE = 0x20
_RANGE_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENOTTY})
_SYS_CACHESTAT = 451  # the same number on every Linux architecture (since 6.5)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_EXCHANGE_UNAVAILABLE = frozenset({errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
_T = TypeVar("_T")


class Malformed(Exception):
    """A structural problem found while parsing; becomes an MP4Error naming the file."""


class RangeUnsupported(Exception):
    """The filesystem cannot insert or collapse a range; nothing has been changed."""


class _CachestatRange(ctypes.Structure):
    _fields_ = (("offset", ctypes.c_uint64), ("length", ctypes.c_uint64))


class _Cachestat(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in ("cached", "dirty", "writeback", "evicted", "recently_evicted")
    )


def require(value: _T | None, problem: str) -> _T:
    """`value`, or Malformed(problem) if it is missing."""
    if value is None:
        raise Malformed(problem)
    return value


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Exactly `size` bytes at `offset`; Malformed if the file ends first."""
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise Malformed(f"the file ends inside bytes {offset}..{offset + size} (truncated)")
        data += more
    return data


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`."""
    view = memoryview(data)
    while view:
        count = os.pwrite(fd, view, offset)
        view = view[count:]
        offset += count


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def same_file(path: Path, other: Path) -> bool:
    """Whether both paths name one existing file."""
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) through libc; `RangeUnsupported` where the filesystem cannot do `mode`."""
    function = _libc_fallocate()
    if function is None:
        raise RangeUnsupported
    if function(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        if code in _RANGE_UNSUPPORTED:
            raise RangeUnsupported
        raise OSError(code, os.strerror(code))


def written_back(fd: int) -> bool:
    """Whether the kernel holds no page of this file still to be written to disk.

    Asked with cachestat(2). Where the kernel cannot say (before Linux 6.5), the file
    counts as written back, which keeps the careful choice: fsync before replacing it.
    """
    syscall = _libc_syscall()
    if syscall is None:
        return True
    whole_file = _CachestatRange(0, 0)
    pages = _Cachestat()
    if syscall(_SYS_CACHESTAT, fd, ctypes.byref(whole_file), ctypes.byref(pages), 0) != 0:
        return True
    pending: int = pages.dirty + pages.writeback
    return pending == 0


def exchange_names(path: Path, other: Path) -> bool:
    """Swap what two names point to, atomically (renameat2 RENAME_EXCHANGE).

    False, with nothing changed, where that cannot be done: `other` does not exist, or
    the C library or the filesystem has no such rename.
    """
    function = _libc_renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(path), _AT_FDCWD, os.fsencode(other), _RENAME_EXCHANGE):
        code = ctypes.get_errno()
        if code in _EXCHANGE_UNAVAILABLE:
            return False
        raise OSError(code, os.strerror(code), str(other))
    return True


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


@cache
def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    libc = _libc()
    if libc is None:
        return None
    function = getattr(libc, "fallocate64", None) or getattr(libc, "fallocate", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    typed: Callable[[int, int, int, int], int] = function
    return typed


@cache
def _libc_syscall() -> Callable[..., int] | None:
    libc = _libc()
    function = None if libc is None else getattr(libc, "syscall", None)
    if function is None:
        return None
    function.restype = ctypes.c_long
    typed: Callable[..., int] = function
    return typed


@cache
def _libc_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    libc = _libc()
    function = None if libc is None else getattr(libc, "renameat2", None)
    if function is None:
        return None
    directory, name = ctypes.c_int, ctypes.c_char_p
    function.argtypes = [directory, name, directory, name, ctypes.c_uint]
    function.restype = ctypes.c_int
    typed: Callable[[int, bytes, int, bytes, int], int] = function
    return typed


@contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[int]:
    """Open `path` under flock, so a second faststart or check waits for the first.

    A faststart that copies replaces the file; a waiter that then holds a lock on the
    old, replaced inode reopens the path.
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
    raise Malformed(f"not a regular file but {kind}; only regular MP4 files are read")


@contextmanager
def about(path: Path) -> Iterator[None]:
    """Turn parse and I/O failures into an MP4Error that names the file."""
    try:
        yield
    except Malformed as problem:
        raise MP4Error(f"{path}: {problem}") from None
    except OSError as error:
        other_file = f" ({error.filename})" if error.filename not in (None, str(path)) else ""
        raise MP4Error(f"{path}: {error.strerror or error}{other_file}") from error
