"""What tests read back from the log."""

from __future__ import annotations

import pytest


def retry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings the retry policy logged, one per retry."""
    return [r.getMessage() for r in caplog.records if r.name == "clipgate.retries"]
