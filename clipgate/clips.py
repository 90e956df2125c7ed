"""Making one clip: generate it, make it streamable, check it, store it, record it.

The generator writes into a scratch folder; the clip is made faststart there, its real
duration read from the file, and only then copied to storage under its clip key with a
first-frame thumbnail beside it. A crash at any point leaves storage without a half clip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

from clipgate import mp4
from clipgate.errors import MP4Error
from clipgate.generators import ClipGenerator
from clipgate.models import ClipKey, VideoProject
from clipgate.storage import ClipStorage
from clipgate.storage.local import file_sha256
from clipgate.store import GenerationAttemptRow, Store, utc_now


class ProducedClip(BaseModel):
    """A clip that is made, faststart, stored and recorded: the per-clip cached result."""

    number: int
    attempt: int
    object_key: str
    location: str
    url: str
    sha256: str
    size_bytes: int
    duration_s: float
    faststart: bool
    thumbnail_url: str
    generator: str
    seconds: float


def produce_clip(
    project: VideoProject,
    key: ClipKey,
    generator: ClipGenerator,
    storage: ClipStorage,
    store: Store,
    work_dir: Path,
) -> ProducedClip:
    """Generate clip `key`, make it faststart, store it under its key and record the attempt."""
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    made = work_dir / f"{key.token}.mp4"
    made.unlink(missing_ok=True)
    result = generator.generate(key, project.clip(key.number), made)
    seconds = time.monotonic() - started
    mp4.make_faststart(made)
    info = mp4.inspect(made)
    if not info.faststart:
        raise MP4Error(
            f"{made}: moov is still after mdat after faststart; the clip is not streamable"
        )
    sha256 = file_sha256(made)
    stored = storage.store(key, made, sha256)
    preview = mp4.thumbnail(made, work_dir / f"{key.token}.jpg")
    stored_preview = storage.store_file(key.thumbnail_key, preview, file_sha256(preview))
    store.record_generation(
        GenerationAttemptRow(
            clip_key=key.token,
            project_id=key.project_id,
            clip_number=key.number,
            attempt=key.attempt,
            generator=result.generator,
            external_task_id=result.external_task_id,
            seconds=round(seconds, 3),
            file=stored.location,
            sha256=sha256,
            cost_usd=result.cost_usd,
            created_at=utc_now(),
        )
    )
    os.unlink(made)
    os.unlink(preview)
    return ProducedClip(
        number=key.number,
        attempt=key.attempt,
        object_key=stored.object_key,
        location=stored.location,
        url=stored.url,
        sha256=sha256,
        size_bytes=stored.size_bytes,
        duration_s=round(info.duration_s, 3),
        faststart=info.faststart,
        thumbnail_url=stored_preview.url,
        generator=result.generator,
        seconds=round(seconds, 3),
    )
