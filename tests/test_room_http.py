"""The review room over HTTP: clips by key with Range and ETag, refusals, token and CSRF."""

from __future__ import annotations

import http.client
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from clipgate import mp4
from clipgate.errors import ConfigurationError
from clipgate.models import ClipKey, VideoProject
from clipgate.samples import make_sample_project
from clipgate.settings import Settings
from clipgate.wiring import build_store
from room.access import check_binding
from tests.room_helpers import make_round_one, running_room

SECRET = "room-token-for-tests-0123456789"  # noqa: S105


def small_settings(home: Path, **extra: object) -> Settings:
    return Settings(
        home=home,
        clip_seconds=1,
        clip_width=160,
        clip_height=90,
        clip_fps=10,
        **extra,  # type: ignore[arg-type]
    )


def new_project(stills: Path) -> VideoProject:
    made, _manifest = make_sample_project(
        stills, f"room-{uuid.uuid4().hex[:8]}", width=160, height=90
    )
    return made


@dataclass(frozen=True)
class Room:
    url: str
    settings: Settings
    project: VideoProject

    def key(self, number: int = 1, attempt: int = 1) -> ClipKey:
        return ClipKey(
            project_id=self.project.project_id,
            channel=self.project.channel,
            number=number,
            attempt=attempt,
        )

    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Room]:
    """A room over one project whose round 1 (18 real clips) waits for review."""
    home = tmp_path_factory.mktemp("room-home")
    settings = small_settings(home)
    project = new_project(tmp_path_factory.mktemp("room-stills"))
    make_round_one(settings, project)
    with running_room(settings) as url:
        yield Room(url, settings, project)


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written: no client normalises the dots or escapes away."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def csrf_token(room: Room, client: httpx.Client | None = None) -> str:
    page = (client or httpx).get(f"{room.url}/projects/{room.project.project_id}").text
    return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_clips_answer_range_requests_with_206_and_content_range(room: Room) -> None:
    """A byte range comes back as 206 with the exact bytes and Content-Range of the file."""
    key = room.key(7)
    stored = (room.settings.clips_dir / key.object_key).read_bytes()
    url = f"{room.url}/clips/{key.object_key}"

    whole = httpx.get(url)
    part = httpx.get(url, headers={"Range": "bytes=100-1099"})
    tail = httpx.get(url, headers={"Range": "bytes=-64"})
    beyond = httpx.get(url, headers={"Range": f"bytes={len(stored) + 10}-"})

    assert whole.status_code == 200
    assert whole.content == stored
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(stored)}"
    assert part.content == stored[100:1100]
    assert tail.status_code == 206
    assert tail.content == stored[-64:]
    assert beyond.status_code == 416


def test_clips_carry_etag_and_immutable_caching(room: Room) -> None:
    """The clip's ETag is its sha256; a matching If-None-Match gets 304 with no body."""
    key = room.key(3)
    made = next(
        row
        for row in build_store(room.settings).generation_attempts(room.project.project_id)
        if row.clip_key == key.token
    )
    first = httpx.get(f"{room.url}/clips/{key.object_key}")
    again = httpx.get(
        f"{room.url}/clips/{key.object_key}", headers={"If-None-Match": first.headers["etag"]}
    )

    assert first.headers["etag"] == f'"{made.sha256}"'
    assert "immutable" in first.headers["cache-control"]
    assert again.status_code == 304
    assert again.content == b""


def test_proxy_strip_and_thumbnail_are_served_by_clip_key(room: Room, tmp_path: Path) -> None:
    """Each clip's proxy is a faststart MP4, its strip and thumbnail JPEGs, beside the clip."""
    key = room.key(12)
    proxy = httpx.get(f"{room.url}/clips/{key.proxy_key}")
    strip = httpx.get(f"{room.url}/clips/{key.strip_key}")
    thumbnail = httpx.get(f"{room.url}/clips/{key.thumbnail_key}")

    assert proxy.headers["content-type"] == "video/mp4"
    saved = tmp_path / "proxy.mp4"
    saved.write_bytes(proxy.content)
    assert mp4.inspect(saved).faststart
    for image in (strip, thumbnail):
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert image.content.startswith(b"\xff\xd8")
    assert proxy.headers["etag"] != strip.headers["etag"]


def test_traversal_unknown_keys_and_outside_files_get_a_4xx(room: Room) -> None:
    """Dots, escapes, absolute paths and keys never made are refused; nothing else leaks."""
    channel, project = room.project.channel, room.project.project_id
    database = room.settings.home / "clipgate.db"
    assert database.is_file()
    paths = [
        "/clips/../../../../etc/passwd",
        "/clips/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/clips/..%2f..%2f..%2fetc%2fpasswd",
        "/clips//etc/passwd",
        "/clips/%2Fetc%2Fpasswd",
        f"/clips/{channel}/{project}/../../clipgate.db",
        f"/clips/{channel}/{project}/clip-01/..%2F..%2F..%2Fclipgate.db",
        f"/clips/{channel}/{project}/clip-01/attempt-9.mp4",
        f"/clips/{channel}/{project}/clip-19/attempt-1.mp4",
        f"/clips/{channel}/{project}/clip-01/attempt-1.mp4.part",
        f"/clips/other-channel/{project}/clip-01/attempt-1.mp4",
        f"/clips/{channel}/nobody/clip-01/attempt-1.mp4",
        f"/clips/{database}",
    ]
    for path in paths:
        status, body = raw_get(room.url, path)
        assert 400 <= status < 500, path
        assert b"root:" not in body, path
        assert b"SQLite" not in body, path
    status, body = raw_get(room.url, f"/clips/{channel}/{project}/clip-01/attempt-9.mp4")
    assert b"attempt 9" in body
    assert b"never made" in body


def test_off_loopback_the_room_needs_a_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No token: refused to start off loopback. Token: 401 without it, a cookie after one visit."""
    with pytest.raises(ConfigurationError, match="CLIPGATE_ROOM_TOKEN"):
        check_binding(small_settings(tmp_path), "0.0.0.0")  # noqa: S104
    caplog.set_level(logging.DEBUG)
    settings = small_settings(tmp_path, room_token=SECRET)
    with running_room(settings, host="0.0.0.0") as url:  # noqa: S104
        local = url.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
        assert httpx.get(f"{local}/").status_code == 401
        assert httpx.get(f"{local}/?token=wrong").status_code == 401
        assert httpx.get(f"{local}/static/room.css").status_code == 401
        with httpx.Client(base_url=local) as browser:
            visit = browser.get(f"/?token={SECRET}")
            assert visit.status_code == 303
            assert visit.headers["location"] == "/"
            assert "httponly" in visit.headers["set-cookie"].lower()
            assert browser.get("/").status_code == 200
        bearer = httpx.get(f"{local}/", headers={"Authorization": f"Bearer {SECRET}"})
        assert bearer.status_code == 200
    served = [
        record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))
    ]
    assert all(SECRET not in record.getMessage() for record in served)
    assert SECRET not in repr(settings)


def test_answers_need_the_rooms_origin_and_csrf_token(room: Room) -> None:
    """Missing or foreign origin, or no CSRF token: 403; with both, the answer path decides."""
    url = f"{room.url}/projects/{room.project.project_id}/answer"
    empty_flag = {"decision": "flag", "clips": [], "reviewer": "ana"}
    token = csrf_token(room)

    no_origin = httpx.post(url, json=empty_flag, headers={"X-CSRF-Token": token})
    foreign = httpx.post(
        url, json=empty_flag, headers={"Origin": "https://evil.example", "X-CSRF-Token": token}
    )
    no_token = httpx.post(url, json=empty_flag, headers={"Origin": room.origin()})
    checked = httpx.post(
        url, json=empty_flag, headers={"Origin": room.origin(), "X-CSRF-Token": token}
    )

    assert [no_origin.status_code, foreign.status_code, no_token.status_code] == [403] * 3
    assert checked.status_code == 422
    assert "'clips'" in checked.json()["detail"]
    assert "non-empty" in checked.json()["detail"]
    row = build_store(room.settings).project(room.project.project_id)
    assert row is not None
    assert row.status == "video_ready"


def test_oversized_notes_and_bodies_are_refused(room: Room) -> None:
    """A note over 2,000 characters is refused with a reason; a body over 64 KiB gets 413."""
    url = f"{room.url}/projects/{room.project.project_id}/answer"
    headers = {"Origin": room.origin(), "X-CSRF-Token": csrf_token(room)}
    long_note = {"decision": "flag", "clips": [4], "notes": [{"clip": 4, "note": "x" * 2001}]}
    huge = {"decision": "flag", "clips": [4], "notes": [{"clip": 4, "note": "y" * 70_000}]}

    refused = httpx.post(url, json=long_note, headers=headers)
    too_big = httpx.post(url, json=huge, headers=headers)

    assert refused.status_code == 422
    assert "is too long" in refused.json()["detail"]
    assert too_big.status_code == 413
    assert build_store(room.settings).review_events(room.project.project_id) == []


def test_bulk_approve_records_each_project_through_the_answer_path(tmp_path: Path) -> None:
    """Approving two waiting projects at once records one room answer per project."""
    settings = small_settings(tmp_path / "home")
    projects = [new_project(tmp_path / "stills") for _ in range(2)]
    for project in projects:
        make_round_one(settings, project)
    with running_room(settings) as url:
        parts = urlsplit(url)
        with httpx.Client(base_url=url) as client:
            page = client.get("/").text
            token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            answered = client.post(
                "/approve",
                json={"projects": [p.project_id for p in projects], "reviewer": "ana"},
                headers={"Origin": f"{parts.scheme}://{parts.netloc}", "X-CSRF-Token": token},
            )
            again = client.post(
                "/approve",
                json={"projects": [projects[0].project_id], "reviewer": "bo"},
                headers={"Origin": f"{parts.scheme}://{parts.netloc}", "X-CSRF-Token": token},
            )
    assert answered.status_code == 200
    assert [result["accepted"] for result in answered.json()["results"]] == [True, True]
    assert again.json()["results"][0]["accepted"] is False
    store = build_store(settings)
    for project in projects:
        (event,) = store.review_events(project.project_id)
        assert (event.decision, event.source, event.reviewer) == ("approve", "room", "ana")
