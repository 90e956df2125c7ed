"""Clips in a local folder, laid out by object key; the default, needs no credentials."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from clipgate.errors import StorageError
from clipgate.ffmpeg import partial_path
from clipgate.models import ClipKey
from clipgate.storage import StoredObject


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LocalStorage:
    """Stores each clip once under `root/<object key>`; never overwrites other bytes."""

    root: Path
    name: str = "local"

    def put_clip(self, key: ClipKey, clip: Path, sha256: str) -> StoredObject:
        return self.put_file(key.object_key, clip, sha256)

    def put_file(self, object_key: str, path: Path, sha256: str) -> StoredObject:
        target = self.root / object_key
        size = path.stat().st_size
        if target.exists():
            if target.stat().st_size != size or file_sha256(target) != sha256:
                raise StorageError(
                    f"{target} already holds a different file; stored objects are never "
                    "overwritten. Move it away if it is stale, then rerun."
                )
            return self._stored(object_key, target, size, sha256, uploaded=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(target)
        shutil.copyfile(path, partial)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        try:
            # A hard link never replaces an existing name: of two runs storing one key at
            # once, exactly one puts its file in place.
            os.link(partial, target)
        except FileExistsError:
            return self.put_file(object_key, path, sha256)
        finally:
            partial.unlink()
        return self._stored(object_key, target, size, sha256, uploaded=True)

    def _stored(
        self, object_key: str, target: Path, size: int, sha256: str, uploaded: bool
    ) -> StoredObject:
        absolute = target.resolve()
        return StoredObject(
            backend=self.name,
            object_key=object_key,
            location=str(absolute),
            url=absolute.as_uri(),
            size_bytes=size,
            sha256=sha256,
            uploaded=uploaded,
        )
