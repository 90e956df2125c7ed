"""Kling's API token: an HS256 JWT signed with the secret key, renewed before it expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable

from clipgate.generators.kling.config import KlingConfig


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
