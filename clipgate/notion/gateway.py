"""Every Notion request goes through here: one pinned API version, a shared rate, retries.

notion-client's own retries are off: this gateway paces every request of the process to
the configured average (Notion allows about 3 a second per integration), honours
Retry-After, and retries what is safe to retry. A write that may have been applied
(a timeout or 5xx on a create or append) is not blindly repeated: it raises
`AmbiguousWrite`, and the caller looks the result up before trying again.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import httpx
from notion_client import Client
from notion_client.client import ClientOptions
from notion_client.errors import APIResponseError, HTTPResponseError, RequestTimeoutError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clipgate.errors import ConfigurationError, NotionError

NOTION_VERSION = "2025-09-03"

logger = logging.getLogger(__name__)

_RETRYABLE_STATUSES = {409, 429, 500, 502, 503, 504, 529}


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


class AmbiguousWrite(Exception):
    """A write failed in a way that may still have applied it; look before writing again."""


class _Pacer:
    """Spaces requests evenly so the average never passes the configured rate."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def wait_turn(self) -> None:
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        time.sleep(max(0.0, slot - now))

    def hold_back(self, seconds: float) -> None:
        """Notion asked us to wait (Retry-After): nobody in this process sends until then."""
        with self.lock:
            self.next_slot = max(self.next_slot, time.monotonic() + seconds)


@cache
def _shared_pacer(base_url: str, token_digest: str, per_second: float) -> _Pacer:
    return _Pacer(per_second)


class NotionGateway:
    """A notion-client Client plus pacing and retries; counts the requests it sends."""

    def __init__(self, config: NotionConfig) -> None:
        self.config = config
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
        for attempt in range(1, self.config.max_attempts + 1):
            self.pacer.wait_turn()
            self.requests_sent += 1
            try:
                return call(*args, **kwargs)
            except APIResponseError as error:
                if error.status not in _RETRYABLE_STATUSES:
                    raise _explained(what, error) from None
                # Notion limits before doing any work, so a 429 changed nothing; a 409 or
                # 5xx may come after the change was made.
                applied_maybe = error.status != 429 and not repeatable
                delay = self._delay(attempt, error)
            except (RequestTimeoutError, httpx.TimeoutException, httpx.TransportError) as error:
                applied_maybe = not repeatable
                delay = self._delay(attempt, None)
                logger.warning("Notion %s: %s (attempt %d)", what, type(error).__name__, attempt)
            except HTTPResponseError as error:
                if error.status not in _RETRYABLE_STATUSES:
                    raise NotionError(f"Notion {what} failed: HTTP {error.status}") from None
                applied_maybe = not repeatable
                delay = self._delay(attempt, None)
            if applied_maybe:
                raise AmbiguousWrite(what)
            if attempt < self.config.max_attempts:
                time.sleep(delay)
        raise NotionError(
            f"Notion {what} kept failing after {self.config.max_attempts} attempts; "
            "Notion may be down: the run can be retried later and will not duplicate rows"
        )

    def _delay(self, attempt: int, error: APIResponseError | None) -> float:
        if error is not None and error.status == 429:
            retry_after = error.headers.get("retry-after") if error.headers else None
            seconds = float(retry_after) if retry_after else 1.0
            self.pacer.hold_back(seconds)
            return 0.0
        backoff: float = min(30.0, 0.5 * 2 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)


def _explained(what: str, error: APIResponseError) -> Exception:
    code = str(getattr(error.code, "value", error.code))
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
    return NotionError(f"Notion refused to {what}: {error}")
