"""The local Kling, driven through httpx exactly as Kling's API documentation describes.

One test per documented rule (API reference: "Video Generation - Image to Video" for the
create, single-task and list endpoints; "General Information" for JWT auth and the error
table), so the fake cannot drift from the service while still agreeing with our client.
Rules Kling leaves undocumented are marked as modelled where they are tested.
"""

from __future__ import annotations

import base64
import struct
import subprocess
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest

from clipgate.generators.kling import sign_jwt
from tests.fakes.kling_server import KlingFake

PATH = "/v1/videos/image2video"


def png(width: int, height: int) -> bytes:
    """A real grey PNG of this size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" + b"\x80" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


STILL = png(480, 300)


@pytest.fixture
def kling() -> Iterator[KlingFake]:
    """A local Kling whose tasks finish in 50 ms, with room for 40 at a time."""
    with KlingFake(task_seconds=0.05, concurrency_limit=40) as fake:
        yield fake


@pytest.fixture
def http(kling: KlingFake) -> Iterator[httpx.Client]:
    """A plain HTTP client on the local Kling carrying a valid token."""
    token = sign_jwt(kling.access_key, kling.secret_key, time.time(), 1800)
    with httpx.Client(
        base_url=kling.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def task_body(external_task_id: str = "", **fields: Any) -> dict[str, Any]:
    """A documented image2video creation body: base64 image without a data: prefix."""
    body: dict[str, Any] = {
        "model_name": "kling-v2-1",
        "mode": "std",
        "duration": "5",
        "image": b64(STILL),
        "prompt": "slow zoom in",
        **fields,
    }
    if external_task_id:
        body["external_task_id"] = external_task_id
    return body


def create(http: httpx.Client, external_task_id: str = "", **fields: Any) -> httpx.Response:
    return http.post(PATH, json=task_body(external_task_id, **fields))


def finished(http: httpx.Client, task_id: str) -> dict[str, Any]:
    """Poll the single-task query until the task has succeeded; its data."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data: dict[str, Any] = http.get(f"{PATH}/{task_id}").json()["data"]
        if data["task_status"] == "succeed":
            return data
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


def assert_envelope(response: httpx.Response, http_status: int, code: int) -> dict[str, Any]:
    """Kling's envelope: code, message, request_id and data, with the documented status."""
    envelope: dict[str, Any] = response.json()
    assert (response.status_code, envelope["code"]) == (http_status, code), envelope
    assert set(envelope) == {"code", "message", "request_id", "data"}
    assert isinstance(envelope["message"], str)
    assert envelope["message"]
    assert isinstance(envelope["request_id"], str)
    assert envelope["request_id"]
    return envelope


def test_create_task_answers_a_submitted_task_with_its_external_id(http: httpx.Client) -> None:
    """POST answers 200/0 with task_id, status submitted, task_info and ms timestamps."""
    before_ms = int(time.time() * 1000)

    data = assert_envelope(create(http, "clip-01"), 200, 0)["data"]

    assert isinstance(data["task_id"], str)
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "clip-01"}
    assert before_ms <= data["created_at"] <= int(time.time() * 1000)
    assert data["updated_at"] >= data["created_at"]


def test_create_task_takes_a_jpeg_or_an_image_url(
    http: httpx.Client, kling: KlingFake, tmp_path: Path
) -> None:
    """image is base64 of a .jpg/.jpeg/.png, or a URL Kling fetches itself."""
    jpeg = tmp_path / "still.jpg"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "color=c=teal:s=640x360", "-frames:v", "1", str(jpeg)),
        ],
        check=True,
    )

    assert_envelope(create(http, "jpeg", image=b64(jpeg.read_bytes())), 200, 0)
    assert_envelope(create(http, "url", image="https://example.com/still.png"), 200, 0)
    assert len(kling.submissions) == 2


@pytest.mark.parametrize(
    "image",
    [
        b64(png(299, 400)),
        b64(png(400, 299)),
        b64(png(1000, 300)),
        b64(png(300, 1000)),
        b64(b"GIF89a" + bytes(64)),
    ],
    ids=["too-narrow", "too-short", "wider-than-2.5-to-1", "taller-than-1-to-2.5", "gif"],
)
def test_create_task_refuses_an_image_outside_the_documented_rules(
    http: httpx.Client, kling: KlingFake, image: str
) -> None:
    """Both sides at least 300px, aspect ratio 1:2.5 to 2.5:1, .jpg/.jpeg/.png only."""
    assert_envelope(create(http, image=image), 400, 1201)
    assert kling.submissions == []


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "x" * 2501},
        {"negative_prompt": "x" * 2501},
        {"duration": 5},
        {"duration": "7"},
        {"mode": "ultra"},
        {"image": "data:image/png;base64," + b64(STILL)},
        {"image": ""},
    ],
    ids=[
        "prompt-too-long",
        "negative-prompt-too-long",
        "duration-not-a-string",
        "duration-not-5-or-10",
        "unknown-mode",
        "data-prefix",
        "no-image",
    ],
)
def test_create_task_refuses_what_the_request_body_table_forbids(
    http: httpx.Client, kling: KlingFake, fields: dict[str, Any]
) -> None:
    """Prompts over 2500 characters, duration not "5"/"10", other modes, a data: prefix: 400."""
    assert_envelope(create(http, **fields), 400, 1201)
    assert kling.submissions == []


def test_single_query_by_task_id_shows_the_video_when_done(http: httpx.Client) -> None:
    """GET /{task_id}: status, task_info, and task_result.videos with id, url and duration."""
    task_id = create(http, "clip-02").json()["data"]["task_id"]

    data = finished(http, task_id)

    assert data["task_id"] == task_id
    assert data["task_info"] == {"external_task_id": "clip-02"}
    assert data["task_status_msg"] == ""
    (video,) = data["task_result"]["videos"]
    assert set(video) == {"id", "url", "duration"}
    assert video["duration"] == "5"
    assert http.get(video["url"]).content[4:8] == b"ftyp"


def test_single_query_by_external_task_id_is_the_same_task(http: httpx.Client) -> None:
    """GET /{external_task_id} answers the task created under that id, as by its task_id."""
    task_id = create(http, "clip-03").json()["data"]["task_id"]
    finished(http, task_id)

    by_external = assert_envelope(http.get(f"{PATH}/clip-03"), 200, 0)["data"]

    assert by_external == http.get(f"{PATH}/{task_id}").json()["data"]


def test_single_query_of_an_unknown_id_is_not_found(http: httpx.Client) -> None:
    """Modelled (undocumented): an id Kling never saw is 404, code 1203, no data."""
    assert assert_envelope(http.get(f"{PATH}/no-such-task"), 404, 1203)["data"] is None


def test_list_query_pages_newest_first_and_ignores_external_task_id(
    http: httpx.Client,
) -> None:
    """GET ?pageNum&pageSize: pages of pageSize (default 30); other parameters are ignored."""
    ids = [create(http, f"clip-{number:02d}").json()["data"]["task_id"] for number in range(35)]
    newest_first = ids[::-1]

    default = assert_envelope(http.get(PATH), 200, 0)["data"]
    filtered = http.get(PATH, params={"external_task_id": "clip-00"}).json()["data"]
    second = http.get(PATH, params={"pageNum": 2, "pageSize": 30}).json()["data"]
    small = http.get(PATH, params={"pageNum": 3, "pageSize": 4}).json()["data"]

    assert [task["task_id"] for task in default] == newest_first[:30]
    assert [task["task_id"] for task in filtered] == newest_first[:30]
    assert [task["task_id"] for task in second] == newest_first[30:]
    assert [task["task_id"] for task in small] == newest_first[8:12]
    assert {"task_status", "task_info", "created_at", "updated_at"} <= set(default[0])


@pytest.mark.parametrize(
    ("params", "http_status", "code"),
    [
        ({"pageSize": 500}, 200, 0),
        ({"pageSize": 501}, 400, 1201),
        ({"pageSize": 0}, 400, 1201),
        ({"pageNum": 1000}, 200, 0),
        ({"pageNum": 1001}, 400, 1201),
        ({"pageNum": 0}, 400, 1201),
    ],
)
def test_list_query_holds_to_the_documented_ranges(
    http: httpx.Client, params: dict[str, int], http_status: int, code: int
) -> None:
    """pageNum is 1-1000 and pageSize 1-500; outside them the query is refused."""
    assert_envelope(http.get(PATH, params=params), http_status, code)


def test_a_reused_external_task_id_is_refused_and_nothing_is_created(
    http: httpx.Client, kling: KlingFake
) -> None:
    """external_task_id is unique per account; the refusal (modelled: 400/1201) names it."""
    create(http, "clip-04")

    refused = assert_envelope(create(http, "clip-04"), 400, 1201)

    assert "external_task_id" in refused["message"]
    assert refused["data"] is None
    assert len(kling.submissions) == 1


@pytest.mark.parametrize("code", [1101, 1102])
def test_account_refusals_are_429_with_their_code(
    http: httpx.Client, kling: KlingFake, code: int
) -> None:
    """Arrears (1101) and an empty resource pack (1102) are HTTP 429 with no data."""
    kling.account_error = code

    assert assert_envelope(create(http, "clip-05"), 429, code)["data"] is None
    assert kling.submissions == []


def test_too_many_creations_a_second_are_429_1302(kling: KlingFake, http: httpx.Client) -> None:
    """Past the rate limit a creation is refused with 429/1302 and nothing is created."""
    kling.rate_limit_per_s = 2

    answers = [create(http, f"clip-{number}") for number in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert_envelope(answers[2], 429, 1302)
    assert len(kling.submissions) == 2


def test_tasks_past_the_concurrency_limit_are_429_1303(
    kling: KlingFake, http: httpx.Client
) -> None:
    """A task holds a slot until it ends; one past the pack's limit is refused with 1303."""
    kling.concurrency_limit = 2
    kling.task_seconds = 5.0

    answers = [create(http, f"clip-{number}") for number in range(3)]

    assert_envelope(answers[2], 429, 1303)
    assert len(kling.submissions) == 2


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda fake: None, 1001),
        (lambda fake: "not.a.jwt", 1002),
        (lambda fake: sign_jwt(fake.access_key, uuid.uuid4().hex, time.time(), 1800), 1002),
        (lambda fake: sign_jwt("someone-else", fake.secret_key, time.time(), 1800), 1002),
        (lambda fake: sign_jwt(fake.access_key, fake.secret_key, time.time() + 600, 1800), 1003),
        (lambda fake: sign_jwt(fake.access_key, fake.secret_key, time.time() - 3600, 1800), 1004),
    ],
    ids=["missing", "malformed", "wrong-secret", "wrong-issuer", "not-yet-valid", "expired"],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_bad_token_is_refused_with_401_and_its_code(
    kling: KlingFake, make_token: Any, code: int, method: str
) -> None:
    """HS256 JWT with iss = access key, nbf and exp: anything else is 401 with 1001-1004."""
    token = make_token(kling)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=kling.base_url, headers=headers) as client:
        answer = client.request(
            method, PATH, json=task_body("clip-06") if method == "POST" else None
        )

    assert_envelope(answer, 401, code)
    assert kling.submissions == []
