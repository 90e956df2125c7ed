"""Kling AI image-to-video: the production generator.

One clip is one Kling task. Its `external_task_id` is the clip key's token, so every
attempt of every clip has its own id and a rerun after a crash finds the task it already
paid for instead of paying again. The result is downloaded at once, because Kling clears
generated videos after 30 days; the attempt records when the provider's URL stops working.

What Kling documents (API reference, "Video Generation - Image to Video" and "General
Information", api-singapore.klingai.com) and this module relies on:
- `GET /v1/videos/image2video/{id}` takes either the task_id or the external_task_id in
  the path; the list query `GET /v1/videos/image2video` takes only `pageNum` (1-1000) and
  `pageSize` (1-500, default 30), so it cannot look one task up.
- "the customized task ID must be unique within a single user account".
- The error table: 1000-1004 (HTTP 401) token problems, 1100-1102 (429) account problems,
  1103 (403), 1200-1203 (400/404) bad requests, 1300/1301 (400) content policy,
  1302/1303 (429) rate and concurrency limits, 1304 (429) IP allow list, 5000-5002 (5xx).
What it does not document, and is assumed here: the code of the refusal of a reused
external_task_id (modelled as 400/1201, "invalid parameter value"), and how an unknown id
is answered on the single-task path (404/1203 "resource not found", or 400).

Errors, by what the caller should do:
- TransientGenerationError: rate limit (1302), concurrency limit (1303), HTTP 429/5xx,
  timeouts. Retried here with backoff a bounded number of times, each retry logged as a
  warning, then raised; running the clip again resumes the same task.
- AccountError: account exception (1100), arrears (1101), resource pack used up (1102).
  Raised at once; nothing is retried.
- ConfigurationError: Kling refused the credentials (1000-1004, 1103, 1304), or nothing
  accepts a connection at the base URL (refused, unknown host). Raised at once: retrying
  an address nobody answers on only hides the mistake for minutes.
- GenerationError: content policy (1300, 1301), bad parameters, or the task failed; the
  message carries Kling's own reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from clipgate.errors import (
    AccountError,
    ConfigurationError,
    GenerationError,
    TransientGenerationError,
)
from clipgate.ffmpeg import partial_path
from clipgate.generators import GenerationResult
from clipgate.models import ClipKey, ClipSpec

KlingMode = Literal["std", "pro"]
KlingDuration = Literal["5", "10"]

_log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://api-singapore.klingai.com"
IMAGE2VIDEO_PATH = "/v1/videos/image2video"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
RESULT_RETENTION = timedelta(days=30)
"""Kling: "generated images/videos will be cleared after 30 days"."""


def price_key(model: str, mode: str, duration: str) -> str:
    """The key of one (model, mode, duration) row in a price table."""
    return f"{model}/{mode}/{duration}s"


# USD per generated clip: estimates. Kling bills API use in units of prepaid resource
# packs and publishes no per-clip dollar list; these are the only per-clip list prices
# found (eachlabs.ai's Kling model pages, 2026-05: v2.1 standard $0.28 for 5 s plus
# $0.056 a second, i.e. $0.56 for 10 s). Put the account's own rate card in
# CLIPGATE_KLING__PRICES_USD to make `clipgate costs` exact.
DEFAULT_PRICES_USD: dict[str, float] = {
    price_key("kling-v2-1", "std", "5"): 0.28,
    price_key("kling-v2-1", "std", "10"): 0.56,
    price_key("kling-v2-1", "pro", "5"): 0.49,
    price_key("kling-v2-1", "pro", "10"): 0.98,
    price_key("kling-v2-1-master", "pro", "5"): 1.40,
    price_key("kling-v2-1-master", "pro", "10"): 2.80,
    price_key("kling-v2-5-turbo", "std", "5"): 0.21,
    price_key("kling-v2-5-turbo", "std", "10"): 0.42,
    price_key("kling-v2-5-turbo", "pro", "5"): 0.35,
    price_key("kling-v2-5-turbo", "pro", "10"): 0.70,
}


class KlingConfig(BaseModel):
    """Everything the Kling generator needs: credentials, what to make, how patiently."""

    model_config = ConfigDict(frozen=True)

    access_key: SecretStr = Field(description="Kling API access key (the JWT issuer)")
    secret_key: SecretStr = Field(description="Kling API secret key (signs the JWT)")
    base_url: str = Field(default=OFFICIAL_BASE_URL, description="Kling API host")
    model: str = Field(default="kling-v2-1", description="Kling model_name")
    mode: KlingMode = Field(default="std", description="std (720p) or pro (1080p)")
    duration: KlingDuration = Field(default="10", description='Clip length, "5" or "10" s')
    negative_prompt: str = Field(default="", max_length=2500)
    prices_usd: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES_USD),
        description="USD per clip, keyed by price_key(model, mode, duration)",
    )
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(
        default=8, ge=0, description="Retries of one request after a transient error"
    )
    retry_initial_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)
    poll_initial_s: float = Field(default=5.0, gt=0)
    poll_max_s: float = Field(default=20.0, gt=0)
    poll_backoff: float = Field(default=1.5, ge=1.0)
    task_timeout_s: float = Field(
        default=20 * 60.0, gt=0, description="Give up waiting on one task (it can be resumed)"
    )
    token_ttl_s: int = Field(default=1800, ge=10)
    token_refresh_margin_s: int = Field(default=300, ge=0)

    @field_validator("access_key", "secret_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"base_url {value!r} must start with https:// or http://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _priced(self) -> KlingConfig:
        if price_key(self.model, self.mode, self.duration) not in self.prices_usd:
            raise ValueError(
                f"no price for model {self.model!r}, mode {self.mode!r}, duration "
                f"{self.duration!r}; add {price_key(self.model, self.mode, self.duration)!r} "
                "to prices_usd so every clip's cost is recorded"
            )
        if self.token_refresh_margin_s >= self.token_ttl_s:
            raise ValueError("token_refresh_margin_s must be shorter than token_ttl_s")
        return self

    @property
    def price_usd(self) -> float:
        """What one clip costs with this model, mode and duration."""
        return self.prices_usd[price_key(self.model, self.mode, self.duration)]

    @property
    def prices_are_estimates(self) -> bool:
        """True unless the account's own prices were given (CLIPGATE_KLING__PRICES_USD)."""
        return "prices_usd" not in self.model_fields_set


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_jwt(access_key: str, secret_key: str, now: float, ttl_s: int) -> str:
    """A Kling API token: HS256 JWT with iss = access key, valid from now - 5 s for ttl_s."""
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {"iss": access_key, "exp": int(now) + ttl_s, "nbf": int(now) - 5}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    signature = hmac.new(secret_key.encode(), signing_input.encode("ascii"), hashlib.sha256)
    return f"{signing_input}.{_b64url(signature.digest())}"


class KlingToken:
    """The current API token, signed again before it expires."""

    def __init__(self, config: KlingConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def current(self) -> str:
        with self._lock:
            now = self._clock()
            if now >= self._renew_at:
                self._token = sign_jwt(
                    self._config.access_key.get_secret_value(),
                    self._config.secret_key.get_secret_value(),
                    now,
                    self._config.token_ttl_s,
                )
                self._renew_at = (
                    now + self._config.token_ttl_s - self._config.token_refresh_margin_s
                )
            return self._token


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


@dataclass(frozen=True)
class _Reply:
    """One HTTP answer in Kling's envelope: {code, message, request_id, data}."""

    http_status: int
    code: int
    message: str
    request_id: str
    data: Any

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.code == 0


_TRANSIENT_CODES = frozenset({1302, 1303, 5000, 5001, 5002})
_ACCOUNT_ADVICE = {
    1100: "the Kling account has an exception; check its configuration in the Kling console",
    1101: "the Kling account is in arrears; recharge it before generating more clips",
    1102: "the Kling resource pack is used up or expired; buy or renew a pack",
}
_CREDENTIAL_CODES = frozenset({1000, 1001, 1002, 1003, 1004, 1103, 1304})


def _error_for(reply: _Reply, what: str) -> GenerationError | ConfigurationError:
    """The clipgate error that a refused Kling request means."""
    detail = f"HTTP {reply.http_status}, code {reply.code}: {reply.message}"
    if reply.request_id:
        detail += f" (request {reply.request_id})"
    if reply.code in _ACCOUNT_ADVICE:
        return AccountError(
            f"{_ACCOUNT_ADVICE[reply.code]}. Generation stopped without retrying ({detail})"
        )
    if reply.code in _CREDENTIAL_CODES or reply.http_status in (401, 403):
        return ConfigurationError(
            f"Kling refused the credentials to {what} ({detail}); check the access key, secret "
            "key and base URL in the Kling block, and that this machine's clock is right"
        )
    if reply.code in _TRANSIENT_CODES or reply.http_status == 429 or reply.http_status >= 500:
        return TransientGenerationError(f"Kling is busy, could not {what} ({detail})")
    return GenerationError(f"Kling refused to {what} ({detail})")


def open_http(config: KlingConfig) -> httpx.Client:
    """The connection pool requests to Kling go through."""
    return httpx.Client(
        base_url=config.base_url,
        timeout=httpx.Timeout(config.request_timeout_s),
        follow_redirects=True,
    )


class _SharedHTTP:
    """One connection pool per generator, opened on first use and shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def get(self, config: KlingConfig) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = open_http(config)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class KlingClient:
    """Kling's image2video API over httpx. Build it when a clip is made; close it after."""

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
        reply = self._with_retries(
            lambda: self._send("GET", f"{IMAGE2VIDEO_PATH}/{quote(external_task_id, safe='')}"),
            f"look up task {external_task_id}",
            missing_is_none=True,
        )
        if reply is None:
            return None
        if not isinstance(reply.data, Mapping):
            raise GenerationError(
                f"Kling answered the look-up of task {external_task_id} with {reply.data!r}"
            )
        task = KlingTask.from_data(reply.data)
        return task if task.external_task_id == external_task_id else None

    def start_task(self, body: Mapping[str, Any]) -> KlingTask:
        """Submit an image2video task, or find the one already submitted under its id.

        Submitting is the only step that costs money, so an unclear outcome (timeout, 5xx,
        a refused id) is always followed by a look-up before anything is sent again.
        """
        external_task_id = str(body["external_task_id"])
        what = f"submit task {external_task_id}"
        retry = 0
        while True:
            try:
                reply = self._send("POST", IMAGE2VIDEO_PATH, json_body=body)
            except TransientGenerationError as unanswered:
                failure = unanswered
            else:
                if reply.ok:
                    _log.info("submitted Kling task %s", external_task_id)
                    return KlingTask.from_data(reply.data)
                refusal = _error_for(reply, what)
                if not isinstance(refusal, TransientGenerationError):
                    # A reused external_task_id is refused with a 400 whose code Kling does
                    # not document; only the look-up tells a duplicate from a bad request.
                    if (
                        reply.http_status == 400
                        and (existing := self.find_task(external_task_id)) is not None
                    ):
                        return existing
                    raise refusal
                failure = refusal
            if retry >= self._config.max_retries:
                raise failure
            self._wait_before_retry(retry, failure)
            retry += 1
            existing = self.find_task(external_task_id)
            if existing is not None:
                return existing

    def get_task(self, task_id: str) -> KlingTask:
        reply = self._with_retries(
            lambda: self._send("GET", f"{IMAGE2VIDEO_PATH}/{quote(task_id, safe='')}"),
            f"query task {task_id}",
        )
        assert reply is not None
        return KlingTask.from_data(reply.data)

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
        """Stream a result to a temp file next to `output`, check it is an MP4, rename it."""
        partial = partial_path(output)
        retry = 0
        while True:
            try:
                self._download_once(url, partial)
                break
            except TransientGenerationError as error:
                partial.unlink(missing_ok=True)
                if retry >= self._config.max_retries:
                    raise
                self._wait_before_retry(retry, error)
                retry += 1
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        with partial.open("rb") as head:
            start = head.read(8)
        if start[4:8] != b"ftyp":
            partial.unlink(missing_ok=True)
            raise GenerationError("Kling's result is not an MP4 (no ftyp box at offset 4)")
        os.replace(partial, output)

    def _download_once(self, url: str, partial: Path) -> None:
        try:
            # Results live on Kling's CDN: the API token is not sent there, and the (signed)
            # URL is kept out of messages.
            with self._http.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientGenerationError(
                        f"downloading the Kling result failed with HTTP {response.status_code}"
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
    ) -> _Reply:
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
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            return _Reply(response.status_code, -1, response.text[:200], "", None)
        code = envelope.get("code")
        return _Reply(
            http_status=response.status_code,
            code=code if isinstance(code, int) else -1,
            message=str(envelope.get("message") or ""),
            request_id=str(envelope.get("request_id") or ""),
            data=envelope.get("data"),
        )

    def _with_retries(
        self, send: Callable[[], _Reply], what: str, *, missing_is_none: bool = False
    ) -> _Reply | None:
        """Send a request that is safe to repeat, retrying transient failures."""
        retry = 0
        while True:
            try:
                reply = send()
            except TransientGenerationError as unanswered:
                failure = unanswered
            else:
                if reply.ok and reply.data:
                    return reply
                # Kling does not document how an unknown id is answered (404/1203 "resource
                # not found", 400, or empty data); a real problem with the request shows up
                # when the task is submitted.
                if missing_is_none and (
                    reply.http_status in (400, 404) or (reply.ok and not reply.data)
                ):
                    return None
                refusal = _error_for(reply, what)
                if not isinstance(refusal, TransientGenerationError):
                    raise refusal
                failure = refusal
            if retry >= self._config.max_retries:
                raise failure
            self._wait_before_retry(retry, failure)
            retry += 1

    def _wait_before_retry(self, retry: int, reason: TransientGenerationError) -> None:
        """Say what is retried, why and after how long, then wait that long."""
        wait = self._backoff(retry)
        _log.warning(
            "%s: %s; retry %d of %d in %.1f s",
            self._label,
            reason,
            retry + 1,
            self._config.max_retries,
            wait,
        )
        time.sleep(wait)

    def _backoff(self, retry: int) -> float:
        """Exponential backoff with jitter, so workers refused together do not return together."""
        ceiling = min(self._config.retry_initial_s * 2**retry, self._config.retry_max_s)
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class KlingGenerator:
    """Makes a clip with Kling image2video from the clip's still and motion prompt."""

    config: KlingConfig
    name: str = "kling"
    _http: _SharedHTTP = field(default_factory=_SharedHTTP, init=False, repr=False, compare=False)

    def close(self) -> None:
        """Close the connection pool; a later clip opens a new one."""
        self._http.close()

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult:
        try:
            task = self._generate(key, spec, output)
        except (GenerationError, ConfigurationError) as error:
            raise type(error)(f"clip {key.number} (attempt {key.attempt}): {error}") from None
        return GenerationResult(
            generator=self.name,
            cost_usd=self.config.price_usd,
            external_task_id=task.task_id,
            provider_url_expires_at=task.video_url_expires_at,
        )

    def _generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> KlingTask:
        if output.exists():
            raise GenerationError(f"{output} already exists; a clip is never overwritten")
        output.parent.mkdir(parents=True, exist_ok=True)
        label = f"clip {key.number} (attempt {key.attempt})"
        with KlingClient(self.config, http=self._http.get(self.config), label=label) as client:
            task = client.find_task(key.token)
            if task is None:
                task = client.start_task(self.request_body(key, spec))
            else:
                _log.info("resuming Kling task %s (%s)", key.token, task.status)
            task = client.wait_for(task)
            client.download(task.video_url, output)
        return task

    def request_body(self, key: ClipKey, spec: ClipSpec) -> dict[str, str]:
        """The image2video request for one clip attempt."""
        image = spec.composite_image
        if not image.is_file():
            raise GenerationError(f"composite image {image} does not exist")
        size = image.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise GenerationError(
                f"composite image {image} is {size} bytes; Kling takes at most {MAX_IMAGE_BYTES}"
            )
        body = {
            "model_name": self.config.model,
            "mode": self.config.mode,
            "duration": self.config.duration,
            "image": base64.b64encode(image.read_bytes()).decode("ascii"),
            "prompt": spec.motion_prompt,
            "external_task_id": key.token,
        }
        if self.config.negative_prompt:
            body["negative_prompt"] = self.config.negative_prompt
        return body
