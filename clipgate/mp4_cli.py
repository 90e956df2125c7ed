"""`clipgate mp4 check`, `faststart` and `repair`: look at and fix MP4 files from a shell.

Run standalone as `python -m clipgate.mp4_cli mp4 check FILE...`. Registering the
commands imports nothing but argparse; each command imports `clipgate.mp4` when it runs,
so `clipgate parse-feedback` does not load the MP4 code at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clipgate.errors import ClipgateError

if TYPE_CHECKING:
    from clipgate import mp4


def add_mp4_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `mp4 check`, `mp4 faststart` and `mp4 repair` on the `clipgate` command line."""
    mp4_parser = subparsers.add_parser(
        "mp4",
        help="check MP4 files, or make them streamable (moov before mdat)",
        description="Check MP4 files, or make them streamable (moov before mdat).",
    )
    commands = mp4_parser.add_subparsers(dest="mp4_command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="report faststart, fragmented, duration and top-level boxes",
        description="Report faststart, fragmented, duration and top-level boxes of each "
        "file. Never writes: a file an interrupted faststart left marked is reported, and "
        "`clipgate mp4 repair` puts it back. Exits non-zero if any file could not be read.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true", help="print one JSON list of results")
    check.set_defaults(handler=run_check)

    faststart = commands.add_parser(
        "faststart",
        help="move moov before mdat (in place unless --output)",
        description="Move each file's moov box before its mdat so it starts playing at "
        "once. Files already faststart, or fragmented, are not written. A file on disk is "
        "changed in place (insert-range), durable when the command ends; a file just "
        "written and not yet on disk is copied once (copy-unsynced) and reaches the disk "
        "with the kernel's writeback, as it would have anyway. Exits non-zero if any file "
        "failed; the others are still done.",
    )
    faststart.add_argument("files", nargs="+", type=Path, metavar="FILE")
    faststart.add_argument(
        "--output",
        type=Path,
        metavar="OUT",
        help="write here instead of in place: a file for one input, or an existing folder",
    )
    faststart.set_defaults(handler=run_faststart)

    repair = commands.add_parser(
        "repair",
        help="put back a file an interrupted clipgate faststart left marked",
        description="Put each file an interrupted clipgate faststart left marked back "
        "exactly as it was before. Only a file carrying clipgate's own intact marker is "
        "written; any other file is left as it is. Exits non-zero if any file was neither "
        "repaired nor a readable MP4.",
    )
    repair.add_argument("files", nargs="+", type=Path, metavar="FILE")
    repair.set_defaults(handler=run_repair)


def run_check(args: argparse.Namespace) -> int:
    """`clipgate mp4 check`: one line (or one JSON entry) per readable file."""
    from clipgate import mp4

    reports: list[dict[str, object]] = []
    failed = False
    for path in args.files:
        try:
            info = mp4.inspect(path)
        except ClipgateError as error:
            _complain(error)
            failed = True
            continue
        reports.append(_report(path, info))
        if not args.json:
            print(_check_line(path, info))
    if args.json:
        print(json.dumps(reports, indent=2))
    return 1 if failed else 0


def run_faststart(args: argparse.Namespace) -> int:
    """`clipgate mp4 faststart`: relocate each file's moov; exit 1 if any file failed."""
    from clipgate import mp4

    files: list[Path] = args.files
    output: Path | None = args.output
    if output is not None and len(files) > 1 and not output.is_dir():
        print(f"clipgate mp4 faststart: --output {output} must be an existing folder "
              "when several files are given", file=sys.stderr)  # fmt: skip
        return 2
    names = [path.name for path in files]
    if output is not None and output.is_dir() and len(set(names)) < len(names):
        print("clipgate mp4 faststart: two inputs share a name and would overwrite each other "
              f"in {output}", file=sys.stderr)  # fmt: skip
        return 2
    failed = False
    for path in files:
        target = output / path.name if output is not None and output.is_dir() else output
        try:
            result = mp4.make_faststart(path, target)
            print(_faststart_line(path, result))
        except ClipgateError as error:
            _complain(error)
            failed = True
    return 1 if failed else 0


def run_repair(args: argparse.Namespace) -> int:
    """`clipgate mp4 repair`: undo each interrupted faststart; exit 1 if a file is unreadable."""
    from clipgate import mp4

    failed = False
    for path in args.files:
        try:
            repaired = mp4.repair(path)
        except ClipgateError as error:
            _complain(error)
            failed = True
            continue
        if repaired:
            print(f"{path}: interrupted faststart undone, the file is as it was before")
            continue
        try:
            mp4.inspect(path)
        except ClipgateError as error:
            print(f"error: {error} (no clipgate faststart marker: not repaired)", file=sys.stderr)
            failed = True
            continue
        print(f"{path}: nothing to repair (no interrupted clipgate faststart)")
    return 1 if failed else 0


def _complain(error: ClipgateError) -> None:
    print(f"error: {error}", file=sys.stderr)


def _report(path: Path, info: mp4.Mp4Info) -> dict[str, object]:
    return {
        "path": str(path),
        "faststart": info.faststart,
        "fragmented": info.fragmented,
        "duration_s": info.duration_s,
        "boxes": [{"type": box.type, "offset": box.offset, "size": box.size} for box in info.boxes],
    }


def _check_line(path: Path, info: mp4.Mp4Info) -> str:
    boxes = " ".join(f"{box.type}@{box.offset}+{box.size}" for box in info.boxes)
    return (
        f"{path}: faststart={_yes_no(info.faststart)} fragmented={_yes_no(info.fragmented)} "
        f"duration_s={info.duration_s:.3f} boxes: {boxes}"
    )


def _faststart_line(path: Path, result: mp4.FaststartResult) -> str:
    from clipgate import mp4

    destination = "" if result.path == path else f" -> {result.path}"
    if result.changed:
        return (
            f"{path}{destination}: moov moved before mdat "
            f"({result.method}, {result.bytes_written} bytes written)"
        )
    info = mp4.inspect(result.path)
    why = "fragmented" if info.fragmented else "already faststart"
    copied = "" if result.method == "none" else f", copied as is ({result.bytes_written} bytes)"
    return f"{path}{destination}: {why}, moov not moved{copied}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `mp4` commands without the rest of the `clipgate` command line."""
    parser = argparse.ArgumentParser(prog="clipgate")
    add_mp4_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
