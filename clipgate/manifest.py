"""Project manifests: a JSON or YAML file read into a `VideoProject`, every problem at once.

A manifest names each clip's still by a path (relative to the manifest's own folder) or
by an http(s) URL. A URL is fetched into `CLIPGATE_HOME/images` under the SHA-256 of its
bytes, so the run reads a local file that cannot change under it, and a worker sharing
the home finds the same file. Every still must be a PNG or a JPEG: both generators read
those, and Kling reads nothing else. With Kling chosen, Kling's documented limits apply
too (at most 10 MB, at least 300 px a side, between 1:2.5 and 2.5:1).

Problems are reported one a line, each named by where it is in the manifest:

    clips[4].composite_image: stills/still-05.png (clip 5) does not exist
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import httpx
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from clipgate.errors import InputError
from clipgate.generators.kling import MAX_IMAGE_BYTES
from clipgate.models import CLIP_COUNT, ClipSpec, VideoProject
from clipgate.settings import Settings

MAX_FETCH_BYTES = 50 * 1024 * 1024
FETCH_TIMEOUT_S = 60.0
KLING_MIN_SIDE_PX = 300
KLING_MAX_ASPECT = 2.5

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_START = b"\xff\xd8\xff"
# Start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC are not frames.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
_OVER = f"over the {MAX_FETCH_BYTES // (1024 * 1024)} MiB a still may be"
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PROJECT_FIELDS = frozenset(VideoProject.model_fields)
_CLIP_FIELDS = frozenset(ClipSpec.model_fields)


def load_manifest(path: Path, settings: Settings) -> VideoProject:
    """The project `path` describes, stills resolved and checked; InputError lists every problem."""
    data = _read(path)
    clips = data.get("clips")
    problems = _Problems(clips)
    _report_unknown_fields(data, problems)
    resolved = dict(data)
    if isinstance(clips, list):
        with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as http:
            stills = _Stills(path.resolve().parent, settings, http)
            resolved["clips"] = [
                _resolved_clip(index, clip, stills, problems) for index, clip in enumerate(clips)
            ]
        _report_numbering(clips, problems)
    try:
        project = VideoProject.model_validate(resolved)
    except ValidationError as error:
        for detail in error.errors():
            problems.add_validation(detail)
    else:
        if not problems.lines:
            return project
    listed = "\n".join(f"  {line}" for line in problems.lines)
    raise InputError(f"manifest {path} has {len(problems.lines)} problem(s):\n{listed}")


class _Problems:
    """What is wrong, one line each, named by the manifest's own field paths."""

    def __init__(self, clips: Any) -> None:
        self.clips = clips
        self.found: list[tuple[tuple[int, int, str], str]] = []
        self.places: set[str] = set()

    @property
    def lines(self) -> list[str]:
        """Every problem in the order of the manifest: the project's fields, then each clip's."""
        return [line for _order, line in sorted(self.found, key=lambda found: found[0])]

    def add(self, loc: tuple[int | str, ...], what: str) -> None:
        place = _place(loc) or "manifest"
        self.places.add(place)
        index = loc[1] if len(loc) > 1 and loc[0] == "clips" and isinstance(loc[1], int) else -1
        number = self._clip_number(index)
        label = f"{place} (clip {number})" if number is not None else place
        order = (1 if loc[:1] == ("clips",) else 0, index, place)
        self.found.append((order, f"{label}: {what}"))

    def add_validation(self, detail: ErrorDetails) -> None:
        place = _place(detail["loc"]) or "manifest"
        # The whole-project rule is about clip numbers, reported more exactly already.
        if place in self.places or (place in ("manifest", "clips") and "clips" in self.places):
            return
        self.add(detail["loc"], detail["msg"].removeprefix("Value error, "))

    def _clip_number(self, index: int) -> int | None:
        if not isinstance(self.clips, list) or not 0 <= index < len(self.clips):
            return None
        clip = self.clips[index]
        number = clip.get("number") if isinstance(clip, dict) else None
        return number if _is_clip_number(number) else None


def _read(path: Path) -> Mapping[str, Any]:
    if not path.exists():
        raise InputError(f"manifest {path} does not exist")
    if not path.is_file():
        raise InputError(f"manifest {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"manifest {path} is not UTF-8 text: is it JSON or YAML?") from None
    except OSError as error:
        raise InputError(f"manifest {path} cannot be read: {error.strerror}") from None
    try:
        # YAML reads JSON too; a .json file is read as JSON for JSON's own error messages.
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"manifest {path} is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InputError(f"manifest {path} is not valid YAML: {problem}{at}") from None
    if not isinstance(data, dict):
        raise InputError(
            f"manifest {path} must be a mapping with project_id, channel and clips; "
            f"it holds {'nothing' if data is None else type(data).__name__}"
        )
    return data


def _report_unknown_fields(data: Mapping[str, Any], problems: _Problems) -> None:
    for name in data:
        if name not in _PROJECT_FIELDS:
            problems.add((str(name),), f"not a manifest field; expected {_listed(_PROJECT_FIELDS)}")
    clips = data.get("clips")
    if not isinstance(clips, list):
        return
    for index, clip in enumerate(clips):
        if isinstance(clip, dict):
            for name in clip:
                if name not in _CLIP_FIELDS:
                    problems.add(
                        ("clips", index, str(name)),
                        f"not a clip field; expected {_listed(_CLIP_FIELDS)}",
                    )


def _report_numbering(clips: list[Any], problems: _Problems) -> None:
    first_at: dict[int, int] = {}
    for index, clip in enumerate(clips):
        number = clip.get("number") if isinstance(clip, dict) else None
        if not _is_clip_number(number):
            continue
        if number in first_at:
            problems.add(
                ("clips", index, "number"),
                f"{number} is taken: clips[{first_at[number]}] is clip {number}",
            )
        else:
            first_at[number] = index
    missing = [number for number in range(1, CLIP_COUNT + 1) if number not in first_at]
    if missing:
        problems.add(
            ("clips",),
            f"no clip numbered {', '.join(map(str, missing))}; a project has one clip for "
            f"each number 1-{CLIP_COUNT}",
        )


class _Stills:
    """Turns what a manifest says about a still into a checked local file."""

    def __init__(self, folder: Path, settings: Settings, http: httpx.Client) -> None:
        self.folder = folder
        self.settings = settings
        self.http = http
        self.fetched: dict[str, Path | str] = {}

    def resolve(self, given: str) -> Path | str:
        """The checked still for `given` (a path or URL), or what is wrong with it."""
        if given.startswith(("http://", "https://")):
            if given not in self.fetched:
                self.fetched[given] = self._fetch(given)
            return self.fetched[given]
        if _URL_SCHEME.match(given):
            return f"{given} is neither a path nor an http(s) URL"
        path = Path(given).expanduser()
        if not path.is_absolute():
            path = self.folder / path
        path = path.resolve()
        if not path.exists():
            return f"{given} does not exist (looked for {path})"
        if not path.is_file():
            return f"{given} is not a file ({path})"
        problem = self._image_problem(path)
        return f"{given} {problem}" if problem else path

    def _fetch(self, url: str) -> Path | str:
        images = self.settings.home.resolve() / "images"
        images.mkdir(parents=True, exist_ok=True)
        partial = images / f".fetch-{uuid.uuid4().hex}.part"
        try:
            digest = self._download(url, partial)
            kind = _image_kind(partial)
            if kind is None:
                return f"could not use {url}: what it sent is not a PNG or JPEG image"
            final = images / f"{digest}{kind}"
            os.replace(partial, final)
        except _Unfetchable as error:
            return str(error)
        finally:
            partial.unlink(missing_ok=True)
        problem = self._image_problem(final)
        return f"{url} (fetched to {final}) {problem}" if problem else final

    def _download(self, url: str, partial: Path) -> str:
        """Write what `url` sends to `partial`; its SHA-256."""
        digest = hashlib.sha256()
        received = 0
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code != httpx.codes.OK:
                    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    raise _Unfetchable(f"could not fetch {url}: {reason}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_FETCH_BYTES:
                    raise _Unfetchable(f"could not fetch {url}: it is {declared} bytes, {_OVER}")
                with partial.open("wb") as output:
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > MAX_FETCH_BYTES:
                            raise _Unfetchable(f"could not fetch {url}: it sent more, {_OVER}")
                        digest.update(chunk)
                        output.write(chunk)
                    output.flush()
                    # The file is named by its content: no name may point at a file that
                    # a crash left short.
                    os.fsync(output.fileno())
        except httpx.HTTPError as error:
            raise _Unfetchable(f"could not fetch {url}: {type(error).__name__}: {error}") from None
        return digest.hexdigest()

    def _image_problem(self, path: Path) -> str | None:
        try:
            with path.open("rb") as image:
                size = _image_size(image)
        except OSError as error:
            return f"cannot be read: {error.strerror}"
        if size is None:
            return "is not a PNG or JPEG image, or is cut short"
        width, height = size
        if width == 0 or height == 0:
            return f"is an image of {width}x{height} pixels"
        if self.settings.generator != "kling":
            return None
        length = path.stat().st_size
        if length > MAX_IMAGE_BYTES:
            return f"is {length} bytes; Kling takes at most {MAX_IMAGE_BYTES}"
        if min(width, height) < KLING_MIN_SIDE_PX:
            return f"is {width}x{height}; Kling needs at least {KLING_MIN_SIDE_PX} px a side"
        if max(width, height) / min(width, height) > KLING_MAX_ASPECT:
            return (
                f"is {width}x{height}; Kling takes aspect ratios from 1:{KLING_MAX_ASPECT} "
                f"to {KLING_MAX_ASPECT}:1"
            )
        return None


def _resolved_clip(index: int, clip: Any, stills: _Stills, problems: _Problems) -> Any:
    if not isinstance(clip, dict) or not isinstance(clip.get("composite_image"), str):
        return clip
    loc = ("clips", index, "composite_image")
    given = clip["composite_image"]
    if not given.strip():
        problems.add(loc, "is empty; give a path or an http(s) URL")
        return clip
    still = stills.resolve(given)
    if isinstance(still, str):
        problems.add(loc, still)
        return clip
    return {**clip, "composite_image": str(still)}


def _image_kind(path: Path) -> str | None:
    with path.open("rb") as image:
        start = image.read(len(_PNG_SIGNATURE))
    if start == _PNG_SIGNATURE:
        return ".png"
    if start.startswith(_JPEG_START):
        return ".jpg"
    return None


def _image_size(image: BinaryIO) -> tuple[int, int] | None:
    """(width, height) of a whole PNG or a JPEG, read from its header; None otherwise."""
    start = image.read(len(_PNG_SIGNATURE))
    if start == _PNG_SIGNATURE:
        header = image.read(8 + 13)
        if len(header) < 21 or header[4:8] != b"IHDR":
            return None
        width, height = struct.unpack(">II", header[8:16])
        image.seek(-len(_PNG_END), os.SEEK_END)
        # A PNG ends with its IEND chunk; one without it was cut short.
        return (width, height) if image.read() == _PNG_END else None
    if start.startswith(_JPEG_START):
        image.seek(2)
        return _jpeg_size(image)
    return None


def _jpeg_size(image: BinaryIO) -> tuple[int, int] | None:
    while True:
        marker = image.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        while kind == 0xFF:
            fill = image.read(1)
            if not fill:
                return None
            kind = fill[0]
        if kind in _JPEG_STANDALONE:
            continue
        length_bytes = image.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if kind in _JPEG_FRAMES:
            frame = image.read(5)
            if len(frame) < 5:
                return None
            _precision, height, width = struct.unpack(">BHH", frame)
            return width, height
        image.seek(length - 2, os.SEEK_CUR)


def _is_clip_number(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= CLIP_COUNT


def _place(loc: tuple[int | str, ...]) -> str:
    place = ""
    for part in loc:
        place += f"[{part}]" if isinstance(part, int) else (f".{part}" if place else part)
    return place


def _listed(names: frozenset[str]) -> str:
    return ", ".join(sorted(names))


class _Unfetchable(Exception):
    """A still's URL gave nothing usable; the message says what happened."""
