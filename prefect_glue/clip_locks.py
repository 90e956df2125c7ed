"""One run at a time makes a clip, on any machine: Prefect's Redis lock manager, with leases.

prefect-redis takes a transaction's lock with no expiry, so a worker killed while making
a clip would keep that clip locked for good and every later run wanting it would wait
forever. Here a lock lapses `lease_s` after it was last renewed, and while this process
holds any lock a thread renews them all every third of that.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prefect_redis import RedisLockManager
from redis.exceptions import LockNotOwnedError, RedisError

from clipgate.errors import ConfigurationError

logger = logging.getLogger(__name__)


# prefect-redis ships no type information.
class LeasedRedisLockManager(RedisLockManager):  # type: ignore[misc]
    """RedisLockManager whose locks expire unless the process holding them is alive."""

    def __init__(self, connection_url: str, lease_s: float) -> None:
        super().__init__(connection_url=connection_url)
        self.lease_s = lease_s
        self._renewer_guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        return {**state, "lease_s": self.lease_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._renewer_guard = threading.Lock()
        self._renewer = None

    def check(self) -> None:
        """Fail with a ConfigurationError naming CLIPGATE_REDIS_URL unless Redis answers."""
        try:
            self.client.ping()
        except RedisError as error:
            raise ConfigurationError(
                f"cannot reach Redis at CLIPGATE_REDIS_URL ({error}): start Redis, fix the "
                "URL, or unset it to run without same-clip locks"
            ) from error

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock on `key` for `holder`, waiting up to `acquire_timeout` (None: forever)."""
        acquired = bool(
            super().acquire_lock(key, holder, acquire_timeout, hold_timeout or self.lease_s)
        )
        if acquired:
            self._keep_renewing()
        return acquired

    def release_lock(self, key: str, holder: str) -> None:
        """Give the lock back; one whose lease lapsed (the process stalled) is only logged."""
        try:
            super().release_lock(key, holder)
        except LockNotOwnedError:
            self._locks.pop(self._lock_name_for_key(key), None)
            logger.warning(
                "the lock on %s lapsed before it was released: another run may have made "
                "the same clip meanwhile",
                key,
            )

    def _keep_renewing(self) -> None:
        with self._renewer_guard:
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_while_held, name="clip-lock-renewer", daemon=True
                )
                self._renewer.start()

    def _renew_while_held(self) -> None:
        while True:
            time.sleep(self.lease_s / 3)
            with self._renewer_guard:
                held = list(self._locks.items())
                if not held:
                    self._renewer = None
                    return
            for name, lock in held:
                try:
                    lock.reacquire()
                except RedisError as error:
                    if self._locks.get(name) is lock:
                        logger.warning("could not renew the lock %s: %s", name, error)
