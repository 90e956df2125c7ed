"""Kling's image2video API over httpx: submit, look up, poll and download one task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx

from clipgate import mp4
from clipgate.errors import (
    ConfigurationError,
    GenerationError,
    MP4Error,
    TransientGenerationError,
)
from clipgate.ffmpeg import partial_path
from clipgate.generators.kling.config import OFFICIAL_BASE_URL, KlingConfig
from clipgate.generators.kling.errors import Reply, error_for, retryable
from clipgate.generators.kling.token import KlingToken
from clipgate.retries import retry_after_s

IMAGE2VIDEO_PATH = "/v1/videos/image2video"
RESULT_RETENTION = timedelta(days=30)
"""Kling: "generated images/videos will be cleared after 30 days"."""

_log = logging.getLogger(__name__)

T = TypeVar("T")

TaskStatus = Literal["submitted", "processing", "succeed", "failed"]


@dataclass(frozen=True)
class KlingTask:
    """Kling's view of one image2video task."""

    task_id: str
    status: TaskStatus
    status_message: str = ""
    external_task_id: str = ""
    video_url: str = ""
    created_at: datetime | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> KlingTask:
        task_id = data.get("task_id")
        status = data.get("task_status")
        if not isinstance(task_id, str) or status not in (
            "submitted",
            "processing",
            "succeed",
            "failed",
        ):
            raise GenerationError(f"Kling answered with a task clipgate cannot read: {data!r}")
        info = data.get("task_info") or {}
        videos = (data.get("task_result") or {}).get("videos") or []
        created_ms = data.get("created_at")
        return cls(
            task_id=task_id,
            status=status,
            status_message=str(data.get("task_status_msg") or ""),
            external_task_id=str(info.get("external_task_id") or ""),
            video_url=str(videos[0].get("url") or "") if videos else "",
            created_at=(
                datetime.fromtimestamp(created_ms / 1000, UTC)
                if isinstance(created_ms, int)
                else None
            ),
        )

    @property
    def video_url_expires_at(self) -> datetime | None:
        """When Kling clears the result: 30 days from task creation, their earliest start."""
        return None if self.created_at is None else self.created_at + RESULT_RETENTION


def open_http(config: KlingConfig) -> httpx.Client:
    """The connection pool requests to Kling go through."""
    return httpx.Client(
        base_url=config.base_url,
        timeout=httpx.Timeout(config.request_timeout_s),
        follow_redirects=True,
    )


class KlingClient:
    """Kling's image2video API over httpx, each request retried by the config's policy."""

    def __init__(
        self,
        config: KlingConfig,
        *,
        http: httpx.Client | None = None,
        label: str = "Kling",
    ) -> None:
        """`http` is a shared pool from `open_http`, left open; without it the client owns one.

        `label` names the work in retry warnings, e.g. "clip 7 (attempt 2)".
        """
        self._config = config
        self._label = label
        self._policy = config.retry_policy
        self._token = KlingToken(config)
        self._owns_http = http is None
        self._http = http if http is not None else open_http(config)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def find_task(self, external_task_id: str) -> KlingTask | None:
        """The task submitted earlier with this external_task_id, if Kling has one.

        Kling's single-task query takes the external_task_id in the path, however old the
        task; the list query ignores it and shows only the newest page.
        """
        return self._retried(lambda: self._look_up(external_task_id))

    def start_task(self, body: Mapping[str, Any]) -> KlingTask:
        """Submit an image2video task, or find the one already submitted under its id.

        Submitting is the only step that costs money, so after an unclear outcome (timeout,
        dropped connection, 5xx) every later try looks the task up before sending again.
        """
        external_task_id = str(body["external_task_id"])
        what = f"submit task {external_task_id}"
        unclear = False

        def submit() -> KlingTask:
            nonlocal unclear
            if unclear and (existing := self._look_up(external_task_id)) is not None:
                return existing
            try:
                reply = self._send("POST", IMAGE2VIDEO_PATH, json_body=body)
            except TransientGenerationError:
                unclear = True
                raise
            if reply.ok:
                _log.info("submitted Kling task %s", external_task_id)
                return KlingTask.from_data(reply.data)
            # A reused external_task_id is refused with a 400 whose code Kling does not
            # document; only the look-up tells a duplicate from a bad request.
            if (
                reply.http_status == 400
                and (existing := self._look_up(external_task_id)) is not None
            ):
                return existing
            refusal = error_for(reply, what)
            # A 429 is Kling refusing before any work; a 5xx may come after the task was made.
            if isinstance(refusal, TransientGenerationError) and reply.http_status != 429:
                unclear = True
            raise refusal

        return self._retried(submit)

    def get_task(self, task_id: str) -> KlingTask:
        def query() -> KlingTask:
            reply = self._send("GET", f"{IMAGE2VIDEO_PATH}/{quote(task_id, safe='')}")
            if not (reply.ok and reply.data):
                raise error_for(reply, f"query task {task_id}")
            return KlingTask.from_data(reply.data)

        return self._retried(query)

    def wait_for(self, task: KlingTask) -> KlingTask:
        """Poll with a growing interval until the task succeeded; raise if it failed."""
        deadline = time.monotonic() + self._config.task_timeout_s
        interval = self._config.poll_initial_s
        while True:
            if task.status == "succeed":
                if not task.video_url:
                    raise GenerationError(f"Kling task {task.task_id} succeeded without a video")
                return task
            if task.status == "failed":
                reason = task.status_message or "no reason given"
                raise GenerationError(f"Kling task {task.task_id} failed: {reason}")
            if time.monotonic() + interval > deadline:
                raise TransientGenerationError(
                    f"Kling task {task.task_id} is still {task.status} after "
                    f"{self._config.task_timeout_s:.0f} s; run the clip again to resume it "
                    "(the same task is picked up, nothing is paid twice)"
                )
            time.sleep(interval)
            interval = min(interval * self._config.poll_backoff, self._config.poll_max_s)
            task = self.get_task(task.task_id)

    def download(self, url: str, output: Path) -> None:
        """Stream a result to a temp file next to `output`; it lands there faststart."""
        partial = partial_path(output)
        try:
            self._retried(lambda: self._download_once(url, partial))
            mp4.replace_faststart(partial, output)
        except MP4Error as error:
            raise GenerationError(
                f"Kling's result is not an MP4 clipgate can read: {error}"
            ) from None
        finally:
            partial.unlink(missing_ok=True)

    def _retried(self, request: Callable[[], T]) -> T:
        return self._policy.call(request, retryable=retryable, label=self._label)

    def _look_up(self, external_task_id: str) -> KlingTask | None:
        """One single-task query by external_task_id; None if Kling has no such task."""
        reply = self._send("GET", f"{IMAGE2VIDEO_PATH}/{quote(external_task_id, safe='')}")
        # Kling does not document how an unknown id is answered (404/1203 "resource not
        # found", 400, or empty data); a real problem with the request shows up when the
        # task is submitted.
        if reply.http_status in (400, 404) or (reply.ok and not reply.data):
            return None
        if not reply.ok:
            raise error_for(reply, f"look up task {external_task_id}")
        if not isinstance(reply.data, Mapping):
            raise GenerationError(
                f"Kling answered the look-up of task {external_task_id} with {reply.data!r}"
            )
        task = KlingTask.from_data(reply.data)
        return task if task.external_task_id == external_task_id else None

    def _download_once(self, url: str, partial: Path) -> None:
        try:
            # Results live on Kling's CDN: the API token is not sent there, and the (signed)
            # URL is kept out of messages.
            with self._http.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientGenerationError(
                        f"downloading the Kling result failed with HTTP {response.status_code}",
                        retry_after_s=retry_after_s(response.headers.get("Retry-After")),
                    )
                if response.status_code != 200:
                    raise GenerationError(
                        f"the Kling result answered HTTP {response.status_code}; "
                        "results are deleted 30 days after generation"
                    )
                with partial.open("wb") as sink:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
        except httpx.TransportError as error:
            raise TransientGenerationError(
                f"downloading the Kling result failed: {type(error).__name__}"
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
    ) -> Reply:
        """One request; a transport failure raises, anything answered is a reply."""
        try:
            response = self._http.request(
                method,
                path,
                json=json_body,
                headers={"Authorization": f"Bearer {self._token.current()}"},
            )
        except httpx.ConnectError as error:
            # Refused or unresolvable: a wrong address or a blocked network, not a busy Kling.
            raise ConfigurationError(
                f"cannot connect to the Kling API at {self._config.base_url} ({error}): check "
                "the base URL (CLIPGATE_KLING__BASE_URL or the Kling block's base_url; Kling's "
                f"global API is {OFFICIAL_BASE_URL}), and that this machine's network, DNS, "
                "proxy and firewall let it reach that host"
            ) from None
        except httpx.TransportError as error:
            raise TransientGenerationError(
                f"Kling did not answer {method} {path}: {type(error).__name__}"
            ) from None
        asked_wait = retry_after_s(response.headers.get("Retry-After"))
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            return Reply(response.status_code, -1, response.text[:200], "", None, asked_wait)
        code = envelope.get("code")
        return Reply(
            http_status=response.status_code,
            code=code if isinstance(code, int) else -1,
            message=str(envelope.get("message") or ""),
            request_id=str(envelope.get("request_id") or ""),
            data=envelope.get("data"),
            retry_after_s=asked_wait,
        )
