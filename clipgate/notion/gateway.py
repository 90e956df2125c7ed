"""Every Notion request goes through here: one pinned API version, a shared rate, retries.

notion-client's own retries are off: this gateway paces every request of the process to
the configured average (Notion allows about 3 a second per integration) and retries with
the shared policy (`clipgate.retries`), bounded by `max_attempts` and `retry_budget_s`.

- `send_repeatable` is for a request that is safe to send again: a read, or a write that
  sets values. After a 409, a 5xx or a timeout it is sent again.
- `write_once` is for a request that adds something (a page, blocks, an upload). After a
  409, a 5xx or a timeout it may have been applied, so it is not repeated: it raises
  `AmbiguousWrite`, and the caller looks the result up before writing again.

Notion answers 429 `rate_limited` and 529 `service_overload` before doing any work and
asks the client to come back after Retry-After, so both kinds are sent again after it,
and nobody in this process sends before then. notion-client 3.1 does not know the 529
code (it raises a bare HTTPResponseError), so both are recognised here by status.

What is left is raised as one of the error tree's Notion errors: `PermanentNotionError`
for a refusal that sending again cannot change (400, 413, any other 4xx), and
`TransientNotionError` once the retries are spent. 401, 403 and 404 are set-up problems
(`ConfigurationError`) that say what to fix.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import httpx
from notion_client import Client
from notion_client.client import ClientOptions
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clipgate.errors import (
    AmbiguousWrite,
    ConfigurationError,
    PermanentNotionError,
    TransientNotionError,
)
from clipgate.retries import RetryPolicy, Verdict, retry_after_s

NOTION_VERSION = "2025-09-03"

T = TypeVar("T")

# Notion refuses these before doing any work, and says when to come back (Retry-After).
_COME_BACK_LATER = {429: "rate_limited", 529: "service_overload"}


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
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=20,
        description="How often one request, or one write looked up and sent again, is tried",
    )
    retry_budget_s: float = Field(
        default=120.0,
        gt=0,
        description="How long one request, or one write looked up and sent again, is retried",
    )
    timeout_s: float = Field(default=30.0, gt=0)
    feedback_grace_s: float = Field(
        default=180.0,
        ge=0,
        description="How long after a reviewer's last edit of a task page clipgate waits for "
        "clip numbers in the Error Log before replying that it found none",
    )


class _Pacer:
    """Spaces requests evenly so the average never passes the configured rate."""

    def __init__(self, per_second: float, monotonic: Callable[[], float]) -> None:
        self.interval = 1.0 / per_second
        self.monotonic = monotonic
        self.next_slot = monotonic()
        self.lock = threading.Lock()

    def wait_turn(self, sleep: Callable[[float], None]) -> None:
        with self.lock:
            now = self.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        sleep(max(0.0, slot - now))

    def hold_back(self, seconds: float) -> None:
        """Notion asked us to wait (Retry-After): nobody in this process sends until then."""
        with self.lock:
            self.next_slot = max(self.next_slot, self.monotonic() + seconds)


@cache
def _shared_pacer(
    base_url: str, token_digest: str, per_second: float, monotonic: Callable[[], float]
) -> _Pacer:
    return _Pacer(per_second, monotonic)


class _ComeBackLater(Exception):
    """Notion refused before doing any work and said when to come back."""

    def __init__(self, failure: str, wait_s: float | None) -> None:
        super().__init__(failure)
        self.wait_s = wait_s


class _MaybeApplied(Exception):
    """A 409, 5xx or timeout: the request may or may not have been applied."""


class NotionGateway:
    """A notion-client Client plus pacing and retries; counts the requests it sends.

    `sleep` and `monotonic` are how the gateway waits for its turn (also after a
    Retry-After) and tells the time for it; one pace is shared by every gateway of the
    process on the same integration and clock. The retry policy's backoff waits as
    `clipgate.retries` does.
    """

    def __init__(
        self,
        config: NotionConfig,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
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
        self.pacer = _shared_pacer(config.base_url, digest, config.requests_per_second, monotonic)
        self.retries = RetryPolicy(
            attempts=config.max_attempts,
            timeout_s=config.retry_budget_s,
            wait_initial_s=0.5,
            wait_max_s=30.0,
        )
        self.requests_sent = 0

    def send_repeatable(
        self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """A request that is safe to send again (a read, or setting values): retried."""
        return self._send(what, call, args, kwargs, repeatable=True)

    def write_once(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A request that adds something: raises AmbiguousWrite if it may have applied."""
        return self._send(what, call, args, kwargs, repeatable=False)

    def write_or_find(self, what: str, write: Callable[[], T], find: Callable[[], T | None]) -> T:
        """`write()` again until it goes through, or until `find()` finds what it made.

        `write` is made of `write_once` requests; after it raised AmbiguousWrite, `find`
        looks for its result before it is sent again (None: not there). Bounded like every
        retry; raises TransientNotionError naming `what` when the retries are spent.
        """
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            found = find() if attempts > 1 else None
            return write() if found is None else found

        try:
            return self.retries.call(
                attempt,
                retryable=lambda error: isinstance(error, AmbiguousWrite),
                label=f"Notion: {what}",
            )
        except AmbiguousWrite as error:
            raise TransientNotionError(
                f"Notion kept failing to {what} ({attempts} tries, each answered with a 409, "
                "a 5xx or a timeout); the run can be retried later, and it looks for what "
                "earlier tries made before writing again, so nothing is added twice"
            ) from error

    def _send(
        self,
        what: str,
        call: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        repeatable: bool,
    ) -> Any:
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return self._attempt(what, call, args, kwargs)

        def verdict(error: Exception) -> Verdict:
            if isinstance(error, _ComeBackLater):
                return True if error.wait_s is None else error.wait_s
            return repeatable and isinstance(error, _MaybeApplied)

        try:
            return self.retries.call(attempt, retryable=verdict, label=f"Notion: {what}")
        except _MaybeApplied as error:
            if not repeatable:
                raise AmbiguousWrite(
                    f"Notion answered {error} when asked to {what}, and may have done it"
                ) from None
            failure = str(error)
        except _ComeBackLater as error:
            failure = str(error)
        raise TransientNotionError(
            f"Notion kept failing to {what} ({attempts} attempts, last: {failure}); Notion "
            "may be down or overloaded: the run can be retried later and will not duplicate rows"
        )

    def _attempt(
        self, what: str, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self.pacer.wait_turn(self.sleep)
        self.requests_sent += 1
        try:
            return call(*args, **kwargs)
        except HTTPResponseError as error:
            failure = f"HTTP {error.status} {_code_of(error)}"
            if error.status in _COME_BACK_LATER:
                asked = retry_after_s(error.headers.get("retry-after") if error.headers else None)
                self.pacer.hold_back(1.0 if asked is None else asked)
                raise _ComeBackLater(failure, asked) from None
            # A conflict or a server error may come after the change was made.
            if error.status == 409 or error.status >= 500:
                raise _MaybeApplied(failure) from None
            raise _explained(what, error) from None
        except (RequestTimeoutError, httpx.TimeoutException, httpx.TransportError) as error:
            raise _MaybeApplied(type(error).__name__) from None


def _code_of(error: HTTPResponseError) -> str:
    """Notion's error code, also for codes notion-client does not know (service_overload)."""
    code = str(getattr(error.code, "value", error.code))
    if code in ("", "notionhq_client_response_error"):
        return _COME_BACK_LATER.get(error.status, code)
    return code


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
    return PermanentNotionError(f"Notion refused to {what} (HTTP {error.status} {code}): {error}")
