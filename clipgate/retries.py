"""The one retry policy for requests that are safe to send again (stamina underneath).

What is retried is the caller's decision, made per failure by its `retryable` predicate;
the bounds and the waiting are the same for every service:

    RetryPolicy(attempts=9, timeout_s=600.0, wait_initial_s=1.0, wait_max_s=60.0)
    policy.call(operation, retryable=predicate, label="clip 7 (attempt 2)") -> result

- `operation()` is called until it returns. When it raises, `retryable(error)` answers
  False (raise it now), True (retry after the backoff) or a number of seconds (retry after
  exactly that long: the server's Retry-After, from `retry_after_s(header value)`).
- At most `attempts` calls in all. A wait that would end more than `timeout_s` after the
  first call began is not started: the last error is raised instead, so a Retry-After
  longer than the policy allows fails fast rather than holding a worker.
- Backoff before retry n (1-based): a random time between half and all of
  min(wait_initial_s * 2**(n - 1), wait_max_s), so workers refused together come back
  spread out. A server's Retry-After replaces it and is not capped by wait_max_s.
- Every retry is a warning on the `clipgate.retries` logger before the wait:
  "<label>: <error>; retry n of attempts - 1 in <wait> s".
- Tests call `stamina.set_testing(True, attempts=N, cap=True)` (tests/conftest.py): every
  wait becomes zero and nothing else changes, as long as N is at least a policy's attempts.

Callers: clipgate.generators.kling (every Kling request and download),
clipgate.storage.r2 (every S3 request to R2) and clipgate.notion.gateway.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import stamina

Verdict = bool | float
"""A predicate's answer: False, do not retry; True, after the backoff; seconds, after that."""

T = TypeVar("T")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a request that is safe to repeat is tried."""

    attempts: int = 9
    timeout_s: float = 600.0
    wait_initial_s: float = 1.0
    wait_max_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def call(
        self,
        operation: Callable[[], T],
        *,
        retryable: Callable[[Exception], Verdict],
        label: str,
    ) -> T:
        """`operation()`, called again after each failure `retryable` accepts, within bounds."""
        started = time.monotonic()
        retries = 0

        def decide(error: Exception) -> Verdict:
            nonlocal retries
            verdict = retryable(error)
            if verdict is False:
                return False
            wait = self._backoff_s(retries + 1) if verdict is True else max(0.0, verdict)
            if retries + 1 >= self.attempts or time.monotonic() - started + wait > self.timeout_s:
                return False
            retries += 1
            _log.warning(
                "%s: %s; retry %d of %d in %.1f s",
                label,
                error,
                retries,
                self.attempts - 1,
                wait,
            )
            return wait

        # `decide` keeps both bounds and always names the wait, so stamina's own timeout
        # and backoff never apply; stamina does the waiting, which its test mode removes.
        caller = stamina.RetryingCaller(attempts=self.attempts, timeout=None)
        return caller(decide, operation)

    def _backoff_s(self, retry: int) -> float:
        ceiling = min(self.wait_initial_s * 2 ** (retry - 1), self.wait_max_s)
        return random.uniform(ceiling / 2, ceiling)


def retry_after_s(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if unsaid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
