"""Making one clip: generate it, make it streamable, check it, store it, record it.

The generator writes into a scratch folder; the clip is made faststart there, its real
duration read from the file, and only then copied to storage under its clip key with a
first-frame thumbnail, a preview proxy and a motion strip beside it. A crash at any point
leaves storage without a half clip.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import AliasChoices, Field

from clipgate import mp4
from clipgate.errors import MP4Error
from clipgate.generators import ClipGenerator
from clipgate.media import make_previews
from clipgate.models import ClipKey, StoredClip, VideoProject
from clipgate.storage import ClipStorage
from clipgate.storage.local import file_sha256
from clipgate.store import GenerationAttemptRow, Store, utc_now


class ProducedClip(StoredClip):
    """A clip that is made, faststart, stored and recorded: the per-clip cached result."""

    generator: str
    # Clips recorded before the rename carry "seconds".
    generation_seconds: float = Field(
        validation_alias=AliasChoices("generation_seconds", "seconds")
    )


def produce_clip(
    project: VideoProject,
    key: ClipKey,
    generator: ClipGenerator,
    storage: ClipStorage,
    store: Store,
    work_dir: Path,
) -> ProducedClip:
    """Generate clip `key`, make it faststart, store it under its key and record the attempt.

    A clip key already recorded as made is handed back as it was recorded, without
    calling the generator: a run that restarts after a crash pays for nothing twice.
    """
    recorded = store.generation_attempt(key.token)
    if recorded is not None and recorded.produced is not None:
        return ProducedClip.model_validate(recorded.produced)
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Scratch space of this call alone: two runs making the same clip never share a file.
    with tempfile.TemporaryDirectory(prefix=f"{key.token}.", dir=work_dir) as scratch:
        return _produce_in(project, key, generator, storage, store, Path(scratch), started)


def _produce_in(
    project: VideoProject,
    key: ClipKey,
    generator: ClipGenerator,
    storage: ClipStorage,
    store: Store,
    work_dir: Path,
    started: float,
) -> ProducedClip:
    made = work_dir / f"{key.token}.mp4"
    result = generator.generate(key, project.clip(key.number), made)
    seconds = time.monotonic() - started
    mp4.make_faststart(made)
    info = mp4.inspect(made)
    if not info.faststart:
        raise MP4Error(
            f"{made}: moov is still after mdat after faststart; the clip is not streamable"
        )
    sha256 = file_sha256(made)
    stored = storage.put_clip(key, made, sha256)
    preview = mp4.thumbnail(made, work_dir / f"{key.token}.jpg")
    stored_preview = storage.put_file(key.thumbnail_key, preview, file_sha256(preview))
    previews = make_previews(
        made,
        info.duration_s,
        proxy=work_dir / f"{key.token}.proxy.mp4",
        strip=work_dir / f"{key.token}.strip.jpg",
    )
    storage.put_file(key.proxy_key, previews.proxy, file_sha256(previews.proxy))
    storage.put_file(key.strip_key, previews.strip, file_sha256(previews.strip))
    produced = ProducedClip(
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
        generation_seconds=round(seconds, 3),
    )
    store.record_generation(
        GenerationAttemptRow(
            clip_key=key.token,
            project_id=key.project_id,
            clip_number=key.number,
            attempt=key.attempt,
            generator=result.generator,
            external_task_id=result.external_task_id,
            generation_seconds=round(seconds, 3),
            file=stored.location,
            sha256=sha256,
            cost_usd=result.cost_usd,
            created_at=utc_now(),
            provider_url_expires_at=result.provider_url_expires_at,
            produced=produced.model_dump(mode="json"),
        )
    )
    return produced
