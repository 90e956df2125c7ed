"""What each of Kling's answers means for clipgate: its envelope and its error table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipgate.errors import (
    AccountError,
    ConfigurationError,
    GenerationError,
    TransientGenerationError,
)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer in Kling's envelope: {code, message, request_id, data}."""

    http_status: int
    code: int
    message: str
    request_id: str
    data: Any
    retry_after_s: float | None = None
    """The wait a Retry-After header asked for; Kling does not document sending one."""

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


def error_for(reply: Reply, what: str) -> GenerationError | ConfigurationError:
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
        return TransientGenerationError(
            f"Kling is busy, could not {what} ({detail})", retry_after_s=reply.retry_after_s
        )
    return GenerationError(f"Kling refused to {what} ({detail})")


def retryable(error: Exception) -> bool | float:
    """Kling busy, failing inside or not answering is retried, after the wait it asked for."""
    if not isinstance(error, TransientGenerationError):
        return False
    return True if error.retry_after_s is None else error.retry_after_s
