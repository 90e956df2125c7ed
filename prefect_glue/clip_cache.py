"""The per-clip cache as the settings choose it: where results live, and who may make a clip.

Local disk (home/results) is the default; CLIPGATE_RESULTS_BLOCK moves results and their
cache records to a bucket every machine shares. CLIPGATE_REDIS_URL makes the cache
SERIALIZABLE: a run that wants a clip another run is making waits for it and reuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from prefect.cache_policies import CachePolicy
from prefect.filesystems import WritableFileSystem
from prefect.logging import get_run_logger

from clipgate.errors import ConfigurationError
from clipgate.settings import Settings
from prefect_glue.clip_locks import LeasedRedisLockManager

NOT_SERIALIZED = (
    "CLIPGATE_REDIS_URL is not set: same-clip work is not serialized across machines "
    "(two runs that want the same clip at once both make it); set it to a Redis every "
    "machine reaches, e.g. redis://127.0.0.1:6379/0"
)


def clip_result_storage(settings: Settings) -> WritableFileSystem | Path:
    """The saved results block the settings name, else the results folder in home."""
    if settings.results_block:
        from prefect_aws import S3Bucket

        return cast(WritableFileSystem, S3Bucket.load(settings.results_block))
    if settings.results_r2 is not None:
        raise ConfigurationError(
            "CLIPGATE_RESULTS_R2__* describe a results bucket but CLIPGATE_RESULTS_BLOCK is "
            "not set: run `clipgate setup` and set CLIPGATE_RESULTS_BLOCK to the S3Bucket "
            "block it saved, on every machine"
        )
    return settings.results_dir.resolve()


def clip_cache_policy(settings: Settings, policy: CachePolicy) -> CachePolicy:
    """`policy` with a Redis lock per cache key when Redis is set; a warning when not."""
    if not settings.redis_url:
        get_run_logger().warning(NOT_SERIALIZED)
        return policy
    locks = LeasedRedisLockManager(settings.redis_url, settings.clip_lock_lease_s)
    locks.check()
    return policy.configure(isolation_level="SERIALIZABLE", lock_manager=locks)
