"""A local Kling AI image2video API on 127.0.0.1, for tests and benchmarks.

It speaks Kling's HTTP API as its documentation describes it (API reference, "Video
Generation - Image to Video" and "General Information"), over a real socket:
- HS256 JWT auth (signature, iss, nbf, exp), refused with 401 and codes 1001-1004;
- `POST /v1/videos/image2video` creates a task from an image URL or plain base64 (no
  `data:` prefix) of a .jpg/.jpeg/.png of at most 10MB, both sides at least 300px, aspect
  ratio 1:2.5 to 2.5:1; prompts of at most 2500 characters; mode std or pro; duration
  the string "5" or "10"; `external_task_id` must be unique in the account;
- `GET /v1/videos/image2video/{id}` answers one task, `id` being its task_id or its
  external_task_id;
- `GET /v1/videos/image2video?pageNum=&pageSize=` answers one page of tasks: pageNum
  1-1000 (default 1), pageSize 1-500 (default 30); any other parameter, such as
  external_task_id, is ignored;
- every answer is Kling's envelope `{"code", "message", "request_id", "data"}` with the
  HTTP status and code of Kling's error table.
Kling does not document these, so they are modelled: a refused parameter (a reused
external_task_id included) is 400/1201 (invalid parameter value), an unknown id is
404/1203 (resource not found), and the list is newest first. An image URL is taken as is.
Kling documents no Retry-After header; only a refusal a test scripts with one sends it.

Each result is a real MP4 made once with the ffmpeg from the imageio-ffmpeg wheel. A task
takes `task_seconds` and holds one concurrency slot until it ends; submitting past
`concurrency_limit` answers 1303, past `rate_limit_per_s` creations in the last second
answers 1302. Tests can make tasks fail, report arrears, or script the next answers.
`connections_accepted` counts the TCP connections clients opened to it;
`submissions_per_external_id()` and `in_flight()` say what was paid for and what runs now.
It listens on 127.0.0.1 unless given another `host` (a cluster's bridge address).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import imageio_ffmpeg

PATH = "/v1/videos/image2video"
RESULTS_PATH = "/results/"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_SIDE = 300
MAX_ASPECT_RATIO = 2.5
MAX_PROMPT_CHARACTERS = 2500
PAGE_NUMBERS = range(1, 1001)
PAGE_SIZES = range(1, 501)
DEFAULT_PAGE_SIZE = 30


@cache
def sample_mp4() -> bytes:
    """A 1 s 160x90 H.264 MP4, made once per process."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "sample.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                *("-hide_banner", "-loglevel", "error", "-y"),
                *("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10", "-t", "1"),
                *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart"),
                str(target),
            ],
            check=True,
            capture_output=True,
        )
        return target.read_bytes()


@dataclass(frozen=True)
class Submission:
    """A task the fake accepted (and the account paid for)."""

    task_id: str
    external_task_id: str
    model_name: str
    mode: str
    duration: str
    prompt: str
    negative_prompt: str
    image_bytes: int


@dataclass
class _Task:
    submission: Submission
    submitted_at: float
    finish_at: float
    failure: str
    created_at_ms: int

    def status(self, now: float) -> str:
        if now >= self.finish_at:
            return "failed" if self.failure else "succeed"
        return "submitted" if now < self.submitted_at + 0.02 else "processing"


@dataclass(frozen=True)
class Refusal:
    """An answer the fake gives to a task creation instead of handling it."""

    http_status: int
    code: int
    message: str
    retry_after: str = ""
    """Sent as the Retry-After header when not empty."""


CONCURRENCY_REFUSAL = Refusal(429, 1303, "parallel task over resource pack limit")


class KlingFake:
    """The state and behaviour of the local Kling; `start()` puts it on a socket."""

    def __init__(
        self,
        *,
        access_key: str = "test-access-key",
        secret_key: str | None = None,
        task_seconds: float = 0.1,
        concurrency_limit: int = 5,
        rate_limit_per_s: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(16)
        self.task_seconds = task_seconds
        self.concurrency_limit = concurrency_limit
        self.rate_limit_per_s = rate_limit_per_s
        self.host = host
        self.account_error: int | None = None
        self.banned_words: set[str] = set()
        self.failures: dict[str, str] = {}
        self.video = sample_mp4()
        self.submissions: list[Submission] = []
        self.create_answers: Counter[int] = Counter()
        self.peak_in_flight = 0
        self.connections_accepted = 0
        self._tasks: dict[str, _Task] = {}
        self._by_external_id: dict[str, str] = {}
        self._recent_creations: deque[float] = deque()
        self._refusals: deque[Refusal] = deque()
        self._stalls: deque[float] = deque()
        self._lock = threading.Lock()
        self._server: _KlingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._server = _KlingHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def environment(self, **settings: str) -> dict[str, str]:
        """Environment that sends clipgate's clips here, with CLIPGATE_KLING__<NAME> settings."""
        return {
            "CLIPGATE_GENERATOR": "kling",
            "CLIPGATE_KLING__ACCESS_KEY": self.access_key,
            "CLIPGATE_KLING__SECRET_KEY": self.secret_key,
            "CLIPGATE_KLING__BASE_URL": self.base_url,
            **{f"CLIPGATE_KLING__{name.upper()}": value for name, value in settings.items()},
        }

    def refuse_creations(self, refusal: Refusal, times: int) -> None:
        """Answer the next `times` task creations with `refusal`, creating nothing."""
        with self._lock:
            self._refusals.extend([refusal] * times)

    def stall_creations(self, seconds: float, times: int) -> None:
        """Create the next `times` tasks, but answer each only after `seconds`."""
        with self._lock:
            self._stalls.extend([seconds] * times)

    def create(self, body: Any) -> tuple[int, int, str, Any, dict[str, str]]:
        """POST /v1/videos/image2video: (http status, code, message, data, extra headers)."""
        headers: dict[str, str] = {}
        with self._lock:
            refusal = self._refusals.popleft() if self._refusals else None
            if refusal is None:
                answer = self._create_locked(body, time.monotonic())
            else:
                answer = (refusal.http_status, refusal.code, refusal.message, None)
                if refusal.retry_after:
                    headers["Retry-After"] = refusal.retry_after
            self.create_answers[answer[1]] += 1
            stall = self._stalls.popleft() if answer[1] == 0 and self._stalls else 0.0
        if stall:
            time.sleep(stall)
        return (*answer, headers)

    def submissions_per_external_id(self) -> Counter[str]:
        """How many tasks were created (and paid for) under each external_task_id."""
        with self._lock:
            return Counter(submission.external_task_id for submission in self.submissions)

    def in_flight(self) -> list[str]:
        """The external_task_id of every task that has not ended yet."""
        with self._lock:
            now = time.monotonic()
            return [
                task.submission.external_task_id
                for task in self._tasks.values()
                if task.finish_at > now
            ]

    def count_connection(self) -> None:
        with self._lock:
            self.connections_accepted += 1

    def _create_locked(self, body: Any, now: float) -> tuple[int, int, str, Any]:
        if self.account_error == 1101:
            return 429, 1101, "Account arrears, please recharge", None
        if self.account_error == 1102:
            return 429, 1102, "Resource pack exhausted or expired", None
        if self.rate_limit_per_s is not None:
            while self._recent_creations and self._recent_creations[0] <= now - 1.0:
                self._recent_creations.popleft()
            if len(self._recent_creations) >= self.rate_limit_per_s:
                return 429, 1302, "The API request is too fast, please slow down", None
            self._recent_creations.append(now)
        problem = _invalid(body)
        if problem:
            return 400, 1201, problem, None
        prompt = str(body.get("prompt") or "")
        if any(word in prompt.lower() for word in self.banned_words):
            return 400, 1301, "Failure to pass the risk control system", None
        external_task_id = str(body.get("external_task_id") or "")
        if external_task_id and external_task_id in self._by_external_id:
            return 400, 1201, f"external_task_id {external_task_id} already exists", None
        if self._count_in_flight(now) >= self.concurrency_limit:
            return 429, 1303, "parallel task over resource pack limit", None
        submission = Submission(
            task_id=uuid.uuid4().hex,
            external_task_id=external_task_id,
            model_name=str(body.get("model_name") or "kling-v1"),
            mode=str(body.get("mode") or "std"),
            duration=str(body.get("duration") or "5"),
            prompt=prompt,
            negative_prompt=str(body.get("negative_prompt") or ""),
            image_bytes=0 if _is_url(body["image"]) else len(base64.b64decode(body["image"])),
        )
        task = _Task(
            submission=submission,
            submitted_at=now,
            finish_at=now + self.task_seconds,
            failure=self.failures.get(external_task_id, ""),
            created_at_ms=int(time.time() * 1000),
        )
        self._tasks[submission.task_id] = task
        if external_task_id:
            self._by_external_id[external_task_id] = submission.task_id
        self.submissions.append(submission)
        self.peak_in_flight = max(self.peak_in_flight, self._count_in_flight(now))
        return 200, 0, "SUCCEED", self._task_data(task, now)

    def query(self, task_or_external_id: str) -> tuple[int, int, str, Any]:
        """GET /v1/videos/image2video/{id}: one task, by its task_id or external_task_id."""
        with self._lock:
            task = self._tasks.get(task_or_external_id)
            if task is None and task_or_external_id in self._by_external_id:
                task = self._tasks[self._by_external_id[task_or_external_id]]
            if task is None:
                return 404, 1203, "task not found", None
            return 200, 0, "SUCCEED", self._task_data(task, time.monotonic())

    def page(self, query: dict[str, list[str]]) -> tuple[int, int, str, Any]:
        """GET /v1/videos/image2video: one page of tasks, newest first."""
        try:
            page_number = int(query.get("pageNum", ["1"])[0])
            page_size = int(query.get("pageSize", [str(DEFAULT_PAGE_SIZE)])[0])
        except ValueError:
            return 400, 1201, "pageNum and pageSize must be integers", None
        if page_number not in PAGE_NUMBERS:
            return 400, 1201, "pageNum must be between 1 and 1000", None
        if page_size not in PAGE_SIZES:
            return 400, 1201, "pageSize must be between 1 and 500", None
        with self._lock:
            now = time.monotonic()
            newest_first = list(reversed(self._tasks.values()))
            start = (page_number - 1) * page_size
            page = [self._task_data(task, now) for task in newest_first[start : start + page_size]]
        return 200, 0, "SUCCEED", page

    def result(self, task_id: str) -> bytes | None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status(time.monotonic()) != "succeed":
                return None
        return self.video

    def _count_in_flight(self, now: float) -> int:
        return sum(1 for task in self._tasks.values() if task.finish_at > now)

    def _task_data(self, task: _Task, now: float) -> dict[str, Any]:
        status = task.status(now)
        submission = task.submission
        data: dict[str, Any] = {
            "task_id": submission.task_id,
            "task_status": status,
            "task_status_msg": task.failure if status == "failed" else "",
            "task_info": {"external_task_id": submission.external_task_id},
            "created_at": task.created_at_ms,
            "updated_at": task.created_at_ms
            + int((min(now, task.finish_at) - task.submitted_at) * 1000),
        }
        if status == "succeed":
            data["task_result"] = {
                "videos": [
                    {
                        "id": f"video-{submission.task_id}",
                        "url": f"{self.base_url}{RESULTS_PATH}{submission.task_id}.mp4",
                        "duration": submission.duration,
                    }
                ]
            }
        return data

    def check_token(self, authorization: str | None) -> tuple[int, str] | None:
        """None when the bearer token is valid, else Kling's (code, message)."""
        if not authorization:
            return 1001, "Authorization is empty"
        scheme, _, token = authorization.partition(" ")
        parts = token.split(".")
        if scheme != "Bearer" or len(parts) != 3:
            return 1002, "Authorization is invalid"
        try:
            header = json.loads(_unb64url(parts[0]))
            payload = json.loads(_unb64url(parts[1]))
            signature = _unb64url(parts[2])
        except (ValueError, binascii.Error):
            return 1002, "Authorization is invalid"
        expected = hmac.new(
            self.secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256
        ).digest()
        if (
            not isinstance(header, dict)
            or header.get("alg") != "HS256"
            or not isinstance(payload, dict)
            or payload.get("iss") != self.access_key
            or not hmac.compare_digest(signature, expected)
        ):
            return 1002, "Authorization is invalid"
        now = time.time()
        if not isinstance(payload.get("nbf"), int) or payload["nbf"] > now:
            return 1003, "Authorization is not yet valid"
        if not isinstance(payload.get("exp"), int) or payload["exp"] <= now:
            return 1004, "Authorization has expired"
        return None


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(body: Any) -> str:
    """Kling's complaint about a creation request, or '' when it is well formed."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    image = body.get("image")
    if not isinstance(image, str) or not image:
        return "image is required"
    if not _is_url(image):
        if image.startswith("data:"):
            return "image must be plain base64 without a data: prefix"
        try:
            raw = base64.b64decode(image, validate=True)
        except binascii.Error:
            return "image is not valid base64"
        if problem := _image_problem(raw):
            return problem
    for name in ("prompt", "negative_prompt"):
        if len(str(body.get(name) or "")) > MAX_PROMPT_CHARACTERS:
            return f"{name} cannot exceed {MAX_PROMPT_CHARACTERS} characters"
    if body.get("mode", "std") not in ("std", "pro"):
        return "mode must be std or pro"
    if body.get("duration", "5") not in ("5", "10"):
        return 'duration must be the string "5" or "10"'
    external_task_id = body.get("external_task_id", "")
    if not isinstance(external_task_id, str):
        return "external_task_id must be a string"
    return ""


def _is_url(image: str) -> bool:
    return image.startswith(("https://", "http://"))


def _image_problem(raw: bytes) -> str:
    """What Kling's image rules refuse: format, size, sides and aspect ratio; '' if none."""
    if len(raw) > MAX_IMAGE_BYTES:
        return "image file size cannot exceed 10MB"
    size = _png_size(raw) or _jpeg_size(raw)
    if size is None:
        return "image format must be .jpg / .jpeg / .png"
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        return f"image width and height cannot be less than {MIN_IMAGE_SIDE}px"
    if not 1 / MAX_ASPECT_RATIO <= width / height <= MAX_ASPECT_RATIO:
        return "image aspect ratio must be between 1:2.5 and 2.5:1"
    return ""


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's start-of-frame segment."""
    if raw[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(raw) and raw[at] == 0xFF:
        marker = raw[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", raw[at + 5 : at + 9])
            return width, height
        (length,) = struct.unpack(">H", raw[at + 2 : at + 4])
        at += 2 + length
    return None


class _KlingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kling: KlingFake) -> None:
        super().__init__((kling.host, 0), _KlingHandler)
        self.kling = kling

    def process_request(self, request: Any, client_address: Any) -> None:
        self.kling.count_connection()
        super().process_request(request, client_address)


class _KlingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    @property
    def kling(self) -> KlingFake:
        assert isinstance(self.server, _KlingHTTPServer)
        return self.server.kling

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the fake's records, not its access log."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if urlsplit(self.path).path != PATH:
            self._answer(404, 1202, "invalid request method or path")
            return
        if (refusal := self.kling.check_token(self.headers.get("Authorization"))) is not None:
            self._answer(401, *refusal)
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._answer(400, 1200, "request body is not JSON")
            return
        self._answer(*self.kling.create(body))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(RESULTS_PATH):
            self._serve_result(url.path.removeprefix(RESULTS_PATH).removesuffix(".mp4"))
            return
        if url.path != PATH and not url.path.startswith(f"{PATH}/"):
            self._answer(404, 1202, "invalid request method or path")
            return
        if (refusal := self.kling.check_token(self.headers.get("Authorization"))) is not None:
            self._answer(401, *refusal)
            return
        if url.path == PATH:
            self._answer(*self.kling.page(parse_qs(url.query)))
            return
        self._answer(*self.kling.query(unquote(url.path.removeprefix(f"{PATH}/"))))

    def _serve_result(self, task_id: str) -> None:
        video = self.kling.result(task_id)
        if video is None:
            self.send_response(HTTPStatus.NOT_FOUND)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(video)))
        self.end_headers()
        self.wfile.write(video)

    def _answer(
        self,
        http_status: int,
        code: int,
        message: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        envelope = {
            "code": code,
            "message": message,
            "request_id": uuid.uuid4().hex,
            "data": data,
        }
        payload = json.dumps(envelope).encode()
        self.send_response(http_status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
