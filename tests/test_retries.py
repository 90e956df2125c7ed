"""The retry policy every service shares: bounds, backoff, Retry-After and its warnings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from clipgate.retries import RetryPolicy, Verdict, retry_after_s
from tests.log_helpers import retry_warnings


class Busy(Exception):
    """What a flaky service raises in these tests."""


class Flaky:
    """An operation that raises Busy `failures` times, then returns "done"; counts its calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Busy(f"busy {self.calls}")
        return "done"


def busy_is_retryable(error: Exception) -> Verdict:
    return isinstance(error, Busy)


def test_failures_the_predicate_accepts_are_retried_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two failures, then the result; each retry is a warning with label, reason and count."""
    operation = Flaky(2)

    result = RetryPolicy(attempts=5).call(operation, retryable=busy_is_retryable, label="clip 3")

    assert result == "done"
    assert operation.calls == 3
    warnings = retry_warnings(caplog)
    assert [w.split(";")[0] for w in warnings] == ["clip 3: busy 1", "clip 3: busy 2"]
    for number, warning in enumerate(warnings, 1):
        assert re.search(rf"; retry {number} of 4 in \d+\.\d s$", warning), warning


def test_a_failure_the_predicate_refuses_is_raised_after_one_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A predicate answering False stops at once: one call, the error itself, no warning."""
    operation = Flaky(1)

    with pytest.raises(Busy, match="busy 1"):
        RetryPolicy().call(operation, retryable=lambda error: False, label="x")

    assert operation.calls == 1
    assert retry_warnings(caplog) == []


def test_the_last_error_is_raised_when_the_attempts_run_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three attempts against a service that never recovers: three calls, the third error."""
    operation = Flaky(10)

    with pytest.raises(Busy, match="busy 3"):
        RetryPolicy(attempts=3).call(operation, retryable=busy_is_retryable, label="x")

    assert operation.calls == 3
    assert len(retry_warnings(caplog)) == 2


def test_backoff_doubles_from_the_initial_wait_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Waits fall in [1/2, 1] x min(initial x 2^(n-1), max): 0.5-1, 1-2, 2-4, then 2-4 s."""
    policy = RetryPolicy(attempts=5, wait_initial_s=1.0, wait_max_s=4.0)

    with pytest.raises(Busy):
        policy.call(Flaky(10), retryable=busy_is_retryable, label="x")

    waits = [float(w.rsplit(" in ", 1)[1].removesuffix(" s")) for w in retry_warnings(caplog)]
    ceilings = [1.0, 2.0, 4.0, 4.0]
    assert len(waits) == len(ceilings)
    for wait, ceiling in zip(waits, ceilings, strict=True):
        assert ceiling / 2 - 0.05 <= wait <= ceiling


def test_the_wait_a_server_asks_for_replaces_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A predicate answering 7.5 (seconds, from Retry-After) makes that the wait, uncapped."""
    policy = RetryPolicy(attempts=3, wait_initial_s=0.01, wait_max_s=0.02)

    policy.call(Flaky(1), retryable=lambda error: 7.5, label="x")

    (warning,) = retry_warnings(caplog)
    assert warning.endswith("; retry 1 of 2 in 7.5 s")


def test_a_wait_that_would_end_past_the_deadline_is_not_started(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Asked to wait an hour with ten minutes allowed: the error now, one call, no warning."""
    operation = Flaky(1)

    with pytest.raises(Busy):
        RetryPolicy(timeout_s=600).call(operation, retryable=lambda error: 3600.0, label="x")

    assert operation.calls == 1
    assert retry_warnings(caplog) == []


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    """Delta-seconds, a date in an hour, a date gone by, nothing and nonsense."""
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    gone_by = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)

    assert retry_after_s("120") == 120.0
    asked = retry_after_s(in_an_hour)
    assert asked is not None
    assert 3500 < asked <= 3600
    assert retry_after_s(gone_by) == 0.0
    assert retry_after_s(None) is None
    assert retry_after_s("") is None
    assert retry_after_s("soon") is None


def test_a_policy_without_attempts_is_refused() -> None:
    """Zero attempts would never call the operation at all."""
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)
