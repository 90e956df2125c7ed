"""Every Notion request goes through here: one pinned API version, a shared rate, retries.

notion-client's own retries are off: this gateway paces every request of the process to
the configured average (Notion allows about 3 a second per integration), honours
Retry-After, and retries what is safe to retry. A write that may have been applied
(a timeout or 5xx on a create or append) is not blindly repeated: it raises
`AmbiguousWrite`, and the caller looks the result up before trying again.

Notion answers 429 `rate_limited` and 529 `service_overload` before doing any work and
asks the client to come back after Retry-After; notion-client 3.1 does not know the 529
code (it raises a bare HTTPResponseError), so both are recognised here by status. A 400
or 413 is a refusal that sending again cannot change: it is never retried.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

import httpx
from notion_client import Client
from notion_client.client import ClientOptions
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clipgate.errors import ConfigurationError, InputError, NotionError

NOTION_VERSION = "2025-09-03"

logger = logging.getLogger(__name__)

# Notion refuses these before doing any work, and says when to come back (Retry-After).
_COME_BACK_LATER = {429: "rate_limited", 529: "service_overload"}
_RETRYABLE_STATUSES = {409, 500, 502, 503, 504, *_COME_BACK_LATER}


class NotionConfig(BaseModel):
    """How to reach the workspace: the integration token and the two databases."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr = Field(description="Internal integration token (ntn_...)")
    tasks_database_id: str = Field(description="The Tasks database, one page per video project")
    videos_database_id: str = Field(
        default="", description="The Videos database; `clipgate notion init` creates it"
    )
    base_url: str = Field(default="https://api.notion.com", description="Notion API host")
    requests_per_second: float = Field(default=3.0, gt=0, le=50)
    max_attempts: int = Field(default=8, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    feedback_grace_s: float = Field(
        default=180.0,
        ge=0,
        description="How long after a reviewer's last edit of a task page clipgate waits for "
        "clip numbers in the Error Log before replying that it found none",
    )


class AmbiguousWrite(Exception):
    """A write failed in a way that may still have applied it; look before writing again."""


class _Pacer:
    """Spaces requests evenly so the average never passes the configured rate."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def wait_turn(self, sleep: Callable[[float], None]) -> None:
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        sleep(max(0.0, slot - now))

    def hold_back(self, seconds: float) -> None:
        """Notion asked us to wait (Retry-After): nobody in this process sends until then."""
        with self.lock:
            self.next_slot = max(self.next_slot, time.monotonic() + seconds)


@cache
def _shared_pacer(base_url: str, token_digest: str, per_second: float) -> _Pacer:
    return _Pacer(per_second)


class NotionGateway:
    """A notion-client Client plus pacing and retries; counts the requests it sends.

    `sleep` is how the gateway waits (for its turn, Retry-After and backoff).
    """

    def __init__(self, config: NotionConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep
        self.client = Client(
            ClientOptions(
                auth=config.token.get_secret_value(),
                base_url=config.base_url,
                notion_version=NOTION_VERSION,
                timeout_ms=int(config.timeout_s * 1000),
                retry=False,
            )
        )
        digest = hashlib.sha256(config.token.get_secret_value().encode()).hexdigest()
        self.pacer = _shared_pacer(config.base_url, digest, config.requests_per_second)
        self.requests_sent = 0

    def read(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request that changes nothing (or sets values): retried until it succeeds."""
        return self._send(what, call, args, kwargs, repeatable=True)

    def write_once(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request that adds something: raises AmbiguousWrite if it may have applied."""
        return self._send(what, call, args, kwargs, repeatable=False)

    def _send(
        self,
        what: str,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        repeatable: bool,
    ) -> Any:
        last_failure = ""
        for attempt in range(1, self.config.max_attempts + 1):
            self.pacer.wait_turn(self.sleep)
            self.requests_sent += 1
            try:
                return call(*args, **kwargs)
            except HTTPResponseError as error:
                if error.status not in _RETRYABLE_STATUSES:
                    raise _explained(what, error) from None
                last_failure = f"HTTP {error.status} {_code_of(error)}"
                if error.status in _COME_BACK_LATER:
                    self.pacer.hold_back(_retry_after_s(error))
                    continue
                # A 409 or 5xx may come after the change was made.
                applied_maybe = not repeatable
            except (RequestTimeoutError, httpx.TimeoutException, httpx.TransportError) as error:
                last_failure = type(error).__name__
                applied_maybe = not repeatable
            logger.warning("Notion %s: %s (attempt %d)", what, last_failure, attempt)
            if applied_maybe:
                raise AmbiguousWrite(what)
            if attempt < self.config.max_attempts:
                self.sleep(_backoff_s(attempt))
        raise NotionError(
            f"Notion {what} kept failing after {self.config.max_attempts} attempts "
            f"(last: {last_failure}); Notion may be down or overloaded: the run can be "
            "retried later and will not duplicate rows"
        )


def _code_of(error: HTTPResponseError) -> str:
    """Notion's error code, also for codes notion-client does not know (service_overload)."""
    code = str(getattr(error.code, "value", error.code))
    if code in ("", "notionhq_client_response_error"):
        return _COME_BACK_LATER.get(error.status, code)
    return code


def _retry_after_s(error: HTTPResponseError) -> float:
    """Seconds Notion asked us to wait: Retry-After as seconds or an HTTP date; else 1."""
    value = (error.headers.get("retry-after") if error.headers else None) or ""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _backoff_s(attempt: int) -> float:
    backoff: float = min(30.0, 0.5 * 2 ** (attempt - 1))
    return backoff * (0.5 + random.random() / 2)


def _explained(what: str, error: HTTPResponseError) -> Exception:
    code = _code_of(error)
    if error.status == 401 or code == "unauthorized":
        return ConfigurationError(
            f"Notion refused the integration token while trying to {what}: put a valid "
            "internal integration token in the NotionWorkspace block (or CLIPGATE_NOTION__TOKEN)"
        )
    if error.status == 404 or code == "object_not_found":
        return ConfigurationError(
            f"Notion could not find what clipgate needed to {what}: {error}. Check the id, "
            "and share the page or database with the integration (••• menu, Connections)"
        )
    if error.status == 403 or code == "restricted_resource":
        return ConfigurationError(
            f"the integration may not {what}: give it read, update and insert content "
            "capabilities in Notion's integration settings"
        )
    if error.status in (400, 413):
        # The request itself is wrong (too long, too large, not allowed): sending it again
        # cannot succeed, so this is no NotionError (which the publish task retries).
        return InputError(f"Notion refused to {what} (HTTP {error.status} {code}): {error}")
    return NotionError(f"Notion refused to {what}: {error}")
