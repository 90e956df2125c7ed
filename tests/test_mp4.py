"""The MP4 toolkit on real files made by the wheel's ffmpeg: check, faststart, thumbnails."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from clipgate import mp4
from clipgate.errors import MP4Error
from clipgate.generators.local import LocalMotionGenerator
from clipgate.models import ClipKey, ClipSpec
from clipgate.mp4.files import written_back
from clipgate.mp4_cli import main as mp4_main
from tests.mp4_samples import (
    box,
    chunk_offsets,
    encoded,
    find_box,
    framemd5,
    movie_timescale,
    mvhd_to_version_1,
    replace_last_moov,
    run_ffmpeg,
    sparse_near_4gib,
    stco_to_co64,
    top_boxes,
    with_cmov,
    with_large_mdat,
    with_mehd,
    with_uuid_boxes,
)

STEPS = {
    "stco": ["marked", "inserted", "head-written", "committed"],
    "uuid-around": ["marked", "inserted", "head-written", "moov-renamed", "committed"],
}
CRASHES = [(variant, step) for variant, steps in STEPS.items() for step in steps]


def moov_at_end(variant: str) -> bytes:
    """The video+audio clip with its moov last, edited into one of the variants."""
    data = encoded("av")
    if variant == "co64":
        return replace_last_moov(data, stco_to_co64)
    if variant == "largesize":
        return with_large_mdat(data)
    if variant == "mvhd-v1":
        return replace_last_moov(data, mvhd_to_version_1)
    if variant == "uuid-around":
        return with_uuid_boxes(data)
    return data


def place(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to folder/name and on to the disk, as a clip that has been there a while."""
    path = place_fresh(folder, name, data)
    with path.open("rb") as written:
        os.fsync(written.fileno())
    return path


def place_fresh(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to folder/name and leave it in the page cache, as an encode just did."""
    path = folder / name
    path.write_bytes(data)
    return path


def kept_types(data: bytes) -> list[str]:
    """Top-level box types other than padding, in file order."""
    return [kind for kind, *_ in top_boxes(data) if kind not in ("free", "skip")]


class SimulatedCrash(Exception):
    """Stands for the process dying at a checkpoint."""


def crash_at(step: str) -> Callable[[str], None]:
    """A checkpoint that dies when `step` is reached."""

    def checkpoint(reached: str) -> None:
        if reached == step:
            raise SimulatedCrash(step)

    return checkpoint


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A folder on tmpfs, a filesystem without insert-range."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        yield Path(folder)


def test_tests_run_where_insert_range_works(tmp_path: Path) -> None:
    """The test files live on ext4 or xfs, so the insert-range path really runs."""
    completed = subprocess.run(
        ["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() in ("ext2/ext3", "xfs"), "run pytest with tmp on ext4/xfs"


@pytest.mark.parametrize("variant", ["stco", "co64", "largesize", "mvhd-v1", "uuid-around"])
@pytest.mark.parametrize("how", ["insert-range", "copy", "copy-unsynced", "output"])
def test_faststart_keeps_every_packet(
    tmp_path: Path, variant: str, how: Literal["insert-range", "copy", "copy-unsynced", "output"]
) -> None:
    """Each moov-at-end variant becomes faststart with identical packets, by every method."""
    original = moov_at_end(variant)
    source = place(tmp_path, "clip.mp4", original)
    source.chmod(0o640)
    before = framemd5(source)
    assert not mp4.inspect(source).faststart

    if how == "output":
        result = mp4.make_faststart(source, tmp_path / "out.mp4")
        assert source.read_bytes() == original
    else:
        result = mp4.relocate_moov(source, method=how)

    assert result.changed
    assert result.method == ("copy-unsynced" if how == "output" else how)
    info = mp4.inspect(result.path)
    assert info.faststart
    assert not info.fragmented
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert info.boxes[0].type == "ftyp"
    after = result.path.read_bytes()
    assert sorted(kept_types(after)) == sorted(kept_types(original))
    uuids = [
        after[offset + 8 : offset + 24] for kind, offset, *_ in top_boxes(after) if kind == "uuid"
    ]
    assert uuids == [original[o + 8 : o + 24] for k, o, *_ in top_boxes(original) if k == "uuid"]
    assert framemd5(result.path) == before
    assert result.path.stat().st_mode & 0o777 == 0o640
    if how == "insert-range":
        assert result.bytes_written < 8192
    else:
        assert result.bytes_written == len(after)


def test_co64_stays_co64_with_shifted_offsets(tmp_path: Path) -> None:
    """A co64 table is patched in place and not narrowed back to stco."""
    path = place(tmp_path, "clip.mp4", moov_at_end("co64"))
    before = chunk_offsets(path.read_bytes()[find_box(path.read_bytes(), "moov")[1] :])
    result = mp4.relocate_moov(path, method="insert-range")
    data = path.read_bytes()
    _, moov_offset, moov_size, _ = find_box(data, "moov")
    after = chunk_offsets(data[moov_offset : moov_offset + moov_size])
    shift = find_box(data, "mdat")[1] - find_box(moov_at_end("co64"), "mdat")[1]
    assert result.method == "insert-range"
    assert [kind for kind, _ in after] == ["co64", "co64"]
    assert [[offset + shift for offset in table] for _, table in before] == [t for _, t in after]


def test_stco_upgraded_to_co64_when_offsets_pass_4_gib(tmp_path: Path) -> None:
    """Chunk offsets pushed past 32 bits by the shift turn stco into co64 (sparse 4 GiB file)."""
    path = tmp_path / "huge.mp4"
    moov = sparse_near_4gib(encoded("av"), path)
    before = framemd5(path)
    assert {kind for kind, _ in chunk_offsets(moov)} == {"stco"}

    result = mp4.relocate_moov(path, method="insert-range")

    with path.open("rb") as file:
        head = file.read(64 * 1024)
    moov_offset = head.index(b"moov") - 4
    (moov_size,) = struct.unpack_from(">I", head, moov_offset)
    tables = chunk_offsets(head[moov_offset : moov_offset + moov_size])
    assert result.method == "insert-range"
    assert "co64" in {kind for kind, _ in tables}
    assert max(max(table) for _, table in tables) > 2**32
    assert mp4.inspect(path).faststart
    assert framemd5(path) == before
    assert os.stat(path).st_blocks * 512 < 10 * 1024 * 1024


@pytest.mark.parametrize("trailing_free", [False, True])
def test_already_faststart_is_not_written(tmp_path: Path, trailing_free: bool) -> None:
    """A faststart file (also one ending in a free box) is left byte for byte and time for time."""
    data = encoded("faststart") + (box("free", b"\x00" * 100) if trailing_free else b"")
    path = place(tmp_path, "clip.mp4", data)
    stamp = path.stat().st_mtime_ns

    result = mp4.make_faststart(path)

    assert result == mp4.FaststartResult(path, False, "none", 0)
    assert path.read_bytes() == data
    assert path.stat().st_mtime_ns == stamp
    info = mp4.inspect(path)
    assert info.faststart
    assert info.boxes[-1].type == ("free" if trailing_free else "mdat")


def test_already_faststart_with_output_is_copied_as_is(tmp_path: Path) -> None:
    """Asked for an output, a file already faststart is copied unchanged."""
    path = place(tmp_path, "clip.mp4", encoded("faststart"))
    result = mp4.make_faststart(path, tmp_path / "out.mp4")
    assert (result.changed, result.method) == (False, "copy-unsynced")
    assert (tmp_path / "out.mp4").read_bytes() == path.read_bytes()


def test_fragmented_is_recognised_and_not_written(tmp_path: Path) -> None:
    """A fragmented file reports its duration from the fragments and is not rewritten."""
    data = encoded("fragmented")
    path = place(tmp_path, "frag.mp4", data)

    info = mp4.inspect(path)
    result = mp4.make_faststart(path)

    assert info.fragmented
    assert "moof" in [box.type for box in info.boxes]
    assert info.duration_s == pytest.approx(1.0, abs=0.1)
    assert result == mp4.FaststartResult(path, False, "none", 0)
    assert path.read_bytes() == data


def test_fragmented_duration_comes_from_mehd(tmp_path: Path) -> None:
    """A version-1 mehd box gives the duration of a fragmented file."""
    data = encoded("fragmented")
    path = place(tmp_path, "frag.mp4", with_mehd(data, int(3.5 * movie_timescale(data))))
    assert mp4.inspect(path).duration_s == pytest.approx(3.5)


def test_check_reads_only_headers_and_moov(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inspect reads box headers and the moov, never the media."""
    path = place(tmp_path, "clip.mp4", encoded("av"))
    moov_size = find_box(encoded("av"), "moov")[2]
    read: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    mp4.inspect(path)
    assert sum(read) <= moov_size + 256


def truncated_in_moov() -> bytes:
    """The clip cut in the middle of its trailing moov."""
    data = encoded("av")
    return data[: find_box(data, "moov")[1] + 500]


def truncated_in_mdat() -> bytes:
    """The clip cut in the middle of its mdat."""
    return encoded("av")[:20_000]


def without_moov() -> bytes:
    """The clip with its moov removed."""
    data = encoded("av")
    return data[: find_box(data, "moov")[1]]


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty"),
    "text": (lambda: b"hello, this is not a video at all\n" * 20, "not an MP4"),
    "png": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an MP4"),
    "zeros": (lambda: bytes(10_000), "not an MP4"),
    "tiny": (lambda: b"\x00\x00", "not an MP4"),
    "truncated-moov": (truncated_in_moov, "truncated"),
    "truncated-mdat": (truncated_in_mdat, "truncated"),
    "no-moov": (without_moov, "no moov"),
    "cmov": (lambda: with_cmov(encoded("av")), "compressed (cmov)"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_give_a_clear_error_and_stay_untouched(tmp_path: Path, name: str) -> None:
    """Broken input raises MP4Error naming the file and the problem; nothing is written."""
    make, problem = BROKEN[name]
    data = make()
    path = place(tmp_path, f"{name}.mp4", data)
    for attempt in (
        lambda: mp4.inspect(path),
        lambda: mp4.make_faststart(path),
        lambda: mp4.make_faststart(path, tmp_path / "out.mp4"),
    ):
        with pytest.raises(MP4Error, match=re.escape(problem)) as raised:
            attempt()
        assert str(path) in str(raised.value)
        assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_missing_file_and_folder_give_mp4_errors(tmp_path: Path) -> None:
    """A path that is no file at all is reported as an MP4Error naming it."""
    with pytest.raises(MP4Error, match="No such file"):
        mp4.inspect(tmp_path / "absent.mp4")
    for attempt in (mp4.inspect, mp4.make_faststart, mp4.repair):
        with pytest.raises(MP4Error, match="not a regular file but a directory"):
            attempt(tmp_path)


@pytest.mark.parametrize(("variant", "step"), CRASHES)
@pytest.mark.parametrize("recovery", ["faststart", "repair"])
def test_crash_at_each_step_is_repaired(
    tmp_path: Path, variant: str, step: str, recovery: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopped after any step, the file is put back exactly by repair, or by the next faststart."""
    data = moov_at_end(variant)
    path = place(tmp_path, "clip.mp4", data)
    before = framemd5(path)

    with pytest.raises(SimulatedCrash):
        mp4.relocate_moov(path, method="insert-range", checkpoint=crash_at(step))

    interrupted = step != "committed"
    if interrupted:
        with pytest.raises(MP4Error, match=re.escape(f"run `clipgate mp4 repair {path}`")):
            mp4.inspect(path)
    if recovery == "faststart":
        result = mp4.make_faststart(path)
        assert result.changed == interrupted
        assert mp4.inspect(path).faststart
    else:
        assert mp4_main(["mp4", "repair", str(path)]) == 0
        out = capsys.readouterr().out
        assert ("interrupted faststart undone" in out) == interrupted
        assert ("nothing to repair" in out) == (not interrupted)
        assert (path.read_bytes() == data) == interrupted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert framemd5(path) == before


def test_io_error_midway_puts_the_file_back(tmp_path: Path) -> None:
    """A write failure after the insert (disk full) collapses the file back to the original."""
    data = encoded("av")
    path = place(tmp_path, "clip.mp4", data)

    def disk_full(step: str) -> None:
        if step == "head-written":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(MP4Error, match="No space left"):
        mp4.relocate_moov(path, method="insert-range", checkpoint=disk_full)
    assert path.read_bytes() == data


@pytest.mark.parametrize("method", ["copy", "copy-unsynced"])
@pytest.mark.parametrize("step", ["copied", "replaced"])
def test_copy_path_stopped_leaves_one_whole_file(
    tmp_path: Path, step: str, method: mp4.MethodChoice
) -> None:
    """Stopped before or after the rename, a copy leaves the old or the new file only."""
    data = encoded("av")
    path = place(tmp_path, "clip.mp4", data)
    before = framemd5(path)
    with pytest.raises(SimulatedCrash):
        mp4.relocate_moov(path, method=method, checkpoint=crash_at(step))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert mp4.inspect(path).faststart == (step == "replaced")
    assert framemd5(path) == before


def test_without_insert_range_it_copies_in_place(shm_dir: Path) -> None:
    """On tmpfs, which cannot insert a range, faststart copies once and renames into place."""
    path = place(shm_dir, "clip.mp4", encoded("av"))
    before = framemd5(path)
    result = mp4.make_faststart(path)
    assert (result.changed, result.method) == (True, "copy")
    assert mp4.inspect(path).faststart
    assert framemd5(path) == before
    assert [p.name for p in shm_dir.iterdir()] == ["clip.mp4"]


@pytest.mark.parametrize(("on_disk", "method"), [(True, "insert-range"), (False, "copy-unsynced")])
def test_a_clip_on_disk_gets_insert_range_and_a_fresh_one_a_copy(
    tmp_path: Path, on_disk: bool, method: str
) -> None:
    """On disk, faststart inserts a range; still in the page cache, it copies once, unsynced."""
    data = encoded("av")
    reference = place(tmp_path, "reference.mp4", data)
    path = (place if on_disk else place_fresh)(tmp_path, "clip.mp4", data)
    path.chmod(0o640)

    result = mp4.make_faststart(path)

    assert (result.changed, result.method) == (True, method)
    with path.open("rb") as clip:
        assert written_back(clip.fileno()) == on_disk
    assert mp4.inspect(path).faststart
    assert framemd5(path) == framemd5(reference)
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "reference.mp4"]


@pytest.mark.parametrize("method", ["insert-range", "copy"])
def test_insert_range_and_copy_are_on_disk_when_they_return(
    tmp_path: Path, method: mp4.MethodChoice
) -> None:
    """insert-range and the durable copy leave no page of a fresh clip waiting for writeback."""
    path = place_fresh(tmp_path, "clip.mp4", encoded("av"))

    assert mp4.relocate_moov(path, method=method).method == method

    with path.open("rb") as clip:
        assert written_back(clip.fileno())


def test_the_kernel_tells_a_fresh_file_from_one_on_disk(tmp_path: Path) -> None:
    """A file just written waits for writeback until it is fsynced, as cachestat reports."""
    path = place_fresh(tmp_path, "clip.mp4", encoded("av"))
    with path.open("rb") as clip:
        assert not written_back(clip.fileno())
        os.fsync(clip.fileno())
        assert written_back(clip.fileno())


@pytest.mark.parametrize(
    ("existing", "method"),
    [("none", "copy-unsynced"), ("fresh", "copy-unsynced"), ("on disk", "copy")],
)
def test_an_output_is_fsynced_only_when_it_replaces_a_file_on_disk(
    tmp_path: Path, existing: str, method: str
) -> None:
    """A new output, or one over a fresh file, is left to writeback; over a file on disk, not."""
    source = place(tmp_path, "clip.mp4", encoded("av"))
    output = tmp_path / "out.mp4"
    if existing != "none":
        (place if existing == "on disk" else place_fresh)(tmp_path, "out.mp4", b"old output")

    result = mp4.make_faststart(source, output)

    assert (result.path, result.changed, result.method) == (output, True, method)
    assert mp4.inspect(output).faststart
    assert framemd5(output) == framemd5(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]


def test_replace_faststart_lands_a_moov_at_end_download_streamable(tmp_path: Path) -> None:
    """A moov-at-end file lands at its destination moov first, same packets, and is gone."""
    reference = place(tmp_path, "reference.mp4", encoded("av"))
    partial = place_fresh(tmp_path, ".clip.part.mp4", encoded("av"))
    destination = tmp_path / "clip.mp4"

    result = mp4.replace_faststart(partial, destination)

    assert (result.path, result.changed, result.method) == (destination, True, "copy-unsynced")
    assert mp4.inspect(destination).faststart
    assert framemd5(destination) == framemd5(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "reference.mp4"]


def test_replace_faststart_renames_a_faststart_file_without_writing(tmp_path: Path) -> None:
    """A file already faststart is only renamed: the destination is the same inode, unchanged."""
    data = encoded("faststart")
    partial = place_fresh(tmp_path, ".clip.part.mp4", data)
    inode = partial.stat().st_ino
    destination = tmp_path / "clip.mp4"

    result = mp4.replace_faststart(partial, destination)

    assert result == mp4.FaststartResult(destination, False, "none", 0)
    assert destination.stat().st_ino == inode
    assert destination.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_replace_faststart_leaves_a_broken_file_where_it_is(tmp_path: Path) -> None:
    """A source that is no readable MP4 raises MP4Error and stays put; nothing lands."""
    data = truncated_in_moov()
    partial = place_fresh(tmp_path, ".clip.part.mp4", data)

    with pytest.raises(MP4Error, match="truncated"):
        mp4.replace_faststart(partial, tmp_path / "clip.mp4")

    assert [p.name for p in tmp_path.iterdir()] == [".clip.part.mp4"]
    assert partial.read_bytes() == data


def test_the_local_generator_writes_its_clips_faststart(tmp_path: Path) -> None:
    """The local generator's clip is moov first already, so faststart then writes nothing."""
    still = tmp_path / "still.png"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x180", "-frames:v", "1", str(still))
    generator = LocalMotionGenerator(seconds=0.4, width=160, height=90, fps=10)
    key = ClipKey(project_id="project", channel="channel", number=1, attempt=1)
    spec = ClipSpec(number=1, composite_image=still, motion_prompt="zoom in")
    output = tmp_path / "clip.mp4"

    generator.generate(key, spec, output)

    assert mp4.inspect(output).faststart
    assert mp4.make_faststart(output) == mp4.FaststartResult(output, False, "none", 0)


def test_thumbnail_is_a_jpeg_of_the_first_frame(tmp_path: Path) -> None:
    """The thumbnail is a JPEG scaled to the asked width, written without leftovers."""
    clip = place(tmp_path, "clip.mp4", encoded("av"))
    output = tmp_path / "thumb.jpg"
    assert mp4.thumbnail(clip, output, width=64) == output
    jpeg = output.read_bytes()
    assert jpeg[:2] == b"\xff\xd8"
    start_of_frame = jpeg.index(b"\xff\xc0")
    height, width = struct.unpack_from(">HH", jpeg, start_of_frame + 5)
    assert (width, height) == (64, 36)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "thumb.jpg"]


def test_thumbnail_of_a_broken_clip_is_an_mp4_error(tmp_path: Path) -> None:
    """A clip ffmpeg cannot decode gives an MP4Error naming it, and no thumbnail file."""
    clip = place(tmp_path, "clip.mp4", b"not a video")
    with pytest.raises(MP4Error, match="cannot make a thumbnail") as raised:
        mp4.thumbnail(clip, tmp_path / "thumb.jpg")
    assert str(clip) in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_cli_check_prints_one_line_per_file_and_fails_on_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mp4 check` reports every readable file, names the broken one on stderr, exits 1."""
    good = place(tmp_path, "good.mp4", encoded("av"))
    fast = place(tmp_path, "fast.mp4", encoded("faststart"))
    broken = place(tmp_path, "broken.mp4", b"nope")

    code = mp4_main(["mp4", "check", str(good), str(broken), str(fast)])

    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{good}: faststart=no fragmented=no duration_s=1.0")
    assert "moov@" in lines[0]
    assert lines[1].startswith(f"{fast}: faststart=yes")
    assert str(broken) in err
    assert "not an MP4" in err


def test_cli_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mp4 check --json` prints one JSON list with faststart, fragmented, duration and boxes."""
    data = encoded("av")
    good = place(tmp_path, "good.mp4", data)
    frag = place(tmp_path, "frag.mp4", encoded("fragmented"))

    assert mp4_main(["mp4", "check", "--json", str(good), str(frag)]) == 0

    reports = json.loads(capsys.readouterr().out)
    assert [report["path"] for report in reports] == [str(good), str(frag)]
    assert reports[0]["faststart"] is False
    assert reports[0]["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert reports[0]["boxes"] == [
        {"type": kind, "offset": offset, "size": size} for kind, offset, size, _ in top_boxes(data)
    ]
    assert reports[1]["fragmented"] is True


def test_cli_faststart_many_files_continues_past_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mp4 faststart` fixes every good file in one call and exits 1 for the broken one."""
    clips = [place(tmp_path, f"clip{n}.mp4", encoded("av")) for n in range(3)]
    broken = place(tmp_path, "broken.mp4", truncated_in_moov())
    fast = place(tmp_path, "fast.mp4", encoded("faststart"))

    code = mp4_main(
        ["mp4", "faststart", str(clips[0]), str(broken), *map(str, clips[1:]), str(fast)]
    )

    out, err = capsys.readouterr()
    assert code == 1
    assert all(mp4.inspect(clip).faststart for clip in clips)
    assert out.count("moov moved before mdat (insert-range") == 3
    assert f"{fast}: already faststart, moov not moved" in out
    assert str(broken) in err
    assert "truncated" in err


def test_cli_faststart_output_file_and_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output names a file for one input, or a folder for several; inputs stay as they were."""
    data = encoded("av")
    one = place(tmp_path, "one.mp4", data)
    two = place(tmp_path, "two.mp4", data)
    folder = tmp_path / "out"
    folder.mkdir()

    assert mp4_main(["mp4", "faststart", str(one), "--output", str(tmp_path / "single.mp4")]) == 0
    assert mp4_main(["mp4", "faststart", str(one), str(two), "--output", str(folder)]) == 0
    assert mp4_main(["mp4", "faststart", str(one), str(two), "--output", str(tmp_path / "x")]) == 2

    assert one.read_bytes() == data
    assert two.read_bytes() == data
    for written in (tmp_path / "single.mp4", folder / "one.mp4", folder / "two.mp4"):
        assert mp4.inspect(written).faststart
    assert "must be an existing folder" in capsys.readouterr().err


def test_module_runs_as_a_command(tmp_path: Path) -> None:
    """`python -m clipgate.mp4_cli mp4 faststart` works in a process of its own."""
    clip = place(tmp_path, "clip.mp4", encoded("av"))
    completed = subprocess.run(
        [sys.executable, "-m", "clipgate.mp4_cli", "mp4", "faststart", str(clip)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "insert-range" in completed.stdout
    assert mp4.inspect(clip).faststart
