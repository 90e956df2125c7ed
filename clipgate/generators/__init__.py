"""Image-to-video generators: one module per provider, chosen by settings.

A generator turns a clip's still and motion prompt into an MP4 at a path it is given.
The flow never knows which generator runs; `build_generator` is the one wiring point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from clipgate.models import ClipKey, ClipSpec


@dataclass(frozen=True)
class GenerationResult:
    """What a generator reports about one clip it made."""

    generator: str
    cost_usd: float = 0.0
    external_task_id: str = ""
    provider_url_expires_at: datetime | None = None
    """When the provider deletes the result it served, if it does (Kling: 30 days)."""


class ClipGenerator(Protocol):
    """Makes one clip. `output` must not exist yet; write it completely or not at all."""

    @property
    def name(self) -> str: ...

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult: ...
