"""Clip storage backends: one module per place clips live, chosen per channel.

Every backend stores a finished clip under its clip key's object key and never
overwrites an object that holds different bytes. The flow never knows which runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clipgate.models import ClipKey


@dataclass(frozen=True)
class StoredObject:
    """Where a stored clip lives, and the link a reviewer opens."""

    backend: str
    object_key: str
    location: str
    url: str
    size_bytes: int
    sha256: str
    uploaded: bool


class ClipStorage(Protocol):
    """Puts finished clips somewhere a reviewer can play them."""

    @property
    def name(self) -> str: ...

    def put_clip(self, key: ClipKey, clip: Path, sha256: str) -> StoredObject:
        """Store a finished clip under `key.object_key`."""
        ...

    def put_file(self, object_key: str, path: Path, sha256: str) -> StoredObject:
        """Store a companion file (a thumbnail) under `object_key`."""
        ...
