"""Nothing lost, nothing hangs: `mp4 check` never writes; `mp4 repair` only undoes its marks."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest

from clipgate import mp4
from clipgate.errors import MP4Error
from clipgate.mp4_cli import main as mp4_main
from tests.mp4_samples import box, encoded, find_box, framemd5

MARKER_MAGIC = b"clipgate.fs.v1\r\n"
MARKER_SIZE = 88


class SimulatedCrash(Exception):
    """Stands for the process dying at a checkpoint."""


def interrupted_faststart(folder: Path, step: str = "head-written") -> bytes:
    """The moov-at-end clip as the insert-range faststart leaves it when stopped after `step`."""
    path = folder / "interrupted-source.mp4"
    path.write_bytes(encoded("av"))

    def crash(reached: str) -> None:
        if reached == step:
            raise SimulatedCrash(step)

    with pytest.raises(SimulatedCrash):
        mp4.relocate_moov(path, method="insert-range", checkpoint=crash)
    data = path.read_bytes()
    path.unlink()
    return data


def with_damaged_marker(data: bytes) -> bytes:
    """A marked file with one byte of its marker's recorded original size changed."""
    position = len(data) - MARKER_SIZE + 24
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def with_fake_marker(data: bytes) -> bytes:
    """A file ending in a box that looks like clipgate's marker but was never one."""
    return data + box("cgfs", MARKER_MAGIC + bytes(range(MARKER_SIZE - 8 - len(MARKER_MAGIC))))


def with_borrowed_marker(folder: Path) -> bytes:
    """A real, intact marker moved onto another clip: one byte of its ftyp differs."""
    marker = interrupted_faststart(folder, "marked")[-MARKER_SIZE:]
    other = bytearray(encoded("av"))
    other[12] ^= 0x01
    return bytes(other) + marker


def corpus(folder: Path) -> dict[str, bytes]:
    """Broken and odd files: none of them may be changed by a check."""
    clip = encoded("av")
    moov = find_box(clip, "moov")
    return {
        "zero-head-8.mp4": bytes(8) + clip,
        "zero-head-8-then-junk.mp4": bytes(8) + b"anything at all" * 37 + clip,
        "zero-head-1mib.mp4": bytes(1024 * 1024) + clip,
        "truncated.mp4": clip[: moov[1] + 100],
        "not-mp4.txt": b"this is a shopping list, not a video\n" * 30,
        "empty.mp4": b"",
        "moov-at-end.mp4": clip,
        "faststart.mp4": encoded("faststart"),
        "fragmented.mp4": encoded("fragmented"),
        "fake-marker.mp4": with_fake_marker(clip),
        "damaged-marker.mp4": with_damaged_marker(interrupted_faststart(folder)),
        "borrowed-marker.mp4": with_borrowed_marker(folder),
        "interrupted-inserted.mp4": interrupted_faststart(folder, "inserted"),
        "interrupted-head-written.mp4": interrupted_faststart(folder, "head-written"),
    }


def fingerprint(path: Path) -> tuple[str, int, int]:
    """sha256, size and modification time of a file."""
    stamp = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stamp.st_size, stamp.st_mtime_ns


def written_corpus(folder: Path) -> dict[Path, tuple[str, int, int]]:
    """The corpus as files in `folder`, each with its fingerprint."""
    files = corpus(folder)
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        paths.append(path)
    return {path: fingerprint(path) for path in paths}


def test_check_leaves_every_odd_file_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mp4 check` and `inspect` change no byte and no mtime of any broken or odd file."""
    before = written_corpus(tmp_path)

    for path in before:
        with suppress(MP4Error):
            mp4.inspect(path)
    code = mp4_main(["mp4", "check", *map(str, before)])
    json_code = mp4_main(["mp4", "check", "--json", *map(str, before)])

    assert (code, json_code) == (1, 1)
    assert {path: fingerprint(path) for path in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)
    err = capsys.readouterr().err
    for name in ("interrupted-inserted.mp4", "interrupted-head-written.mp4"):
        path = tmp_path / name
        assert f"{path}: interrupted faststart, run `clipgate mp4 repair {path}`" in err


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("zero-head-8.mp4", "starts with zero bytes"),
        ("zero-head-8-then-junk.mp4", "starts with zero bytes"),
        ("zero-head-1mib.mp4", "starts with zero bytes"),
        ("fake-marker.mp4", "damaged clipgate faststart marker"),
        ("damaged-marker.mp4", "damaged clipgate faststart marker"),
        ("borrowed-marker.mp4", "does not describe the bytes before it"),
        ("not-mp4.txt", "not an MP4"),
    ],
)
def test_repair_and_faststart_refuse_files_without_the_exact_marker(
    tmp_path: Path, name: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without clipgate's intact marker, repair and faststart say why and write nothing."""
    path = tmp_path / name
    path.write_bytes(corpus(tmp_path)[name])
    before = fingerprint(path)

    assert mp4_main(["mp4", "repair", str(path)]) == 1
    assert mp4_main(["mp4", "faststart", str(path)]) == 1
    with pytest.raises(MP4Error, match=re.escape(problem)):
        mp4.make_faststart(path)

    assert fingerprint(path) == before
    err = capsys.readouterr().err
    assert f"{path}: " in err
    assert problem in err


def test_repair_of_an_unmarked_good_file_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A readable MP4 without a marker is reported as needing no repair and not written."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(encoded("av"))
    before = fingerprint(path)

    assert not mp4.repair(path)
    assert mp4_main(["mp4", "repair", str(path)]) == 0

    assert fingerprint(path) == before
    assert "nothing to repair" in capsys.readouterr().out


@pytest.mark.parametrize("step", ["marked", "inserted", "head-written"])
def test_repair_restores_an_interrupted_faststart_exactly(tmp_path: Path, step: str) -> None:
    """A file stopped mid-faststart comes back byte for byte, with the same packets."""
    original = encoded("av")
    reference = tmp_path / "reference.mp4"
    reference.write_bytes(original)
    path = tmp_path / "clip.mp4"
    path.write_bytes(interrupted_faststart(tmp_path, step))

    assert mp4_main(["mp4", "repair", str(path)]) == 0

    assert path.read_bytes() == original
    assert framemd5(path) == framemd5(reference)
    assert mp4_main(["mp4", "repair", str(path)]) == 0
    assert path.read_bytes() == original


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m clipgate.mp4_cli` in its own process, killed if it takes over 20 s."""
    return subprocess.run(
        [sys.executable, "-m", "clipgate.mp4_cli", *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )


@pytest.mark.parametrize("command", ["check", "faststart", "repair"])
def test_a_fifo_is_refused_at_once(tmp_path: Path, command: str) -> None:
    """On a FIFO with no writer, each command names the file and exits instead of waiting."""
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)

    completed = run_cli("mp4", command, str(fifo))

    assert completed.returncode == 1
    assert f"{fifo}: not a regular file but a FIFO" in completed.stderr


@pytest.mark.parametrize(
    ("special", "kind"), [("/dev/null", "a character device"), (".", "a directory")]
)
@pytest.mark.parametrize("call", [mp4.inspect, mp4.make_faststart, mp4.repair])
def test_devices_and_folders_are_refused(
    tmp_path: Path, special: str, kind: str, call: Callable[[Path], object]
) -> None:
    """Devices and folders are refused by every call with an MP4Error naming them."""
    path = Path(special) if special.startswith("/") else tmp_path
    with pytest.raises(MP4Error, match=re.escape(f"{path}: not a regular file but {kind}")):
        call(path)
