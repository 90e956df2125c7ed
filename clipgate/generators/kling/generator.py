"""The Kling generator: one clip is one Kling task, found again by its clip key's token."""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from clipgate.errors import ConfigurationError, GenerationError
from clipgate.generators import GenerationResult
from clipgate.generators.kling.client import KlingClient, KlingTask, open_http
from clipgate.generators.kling.config import KlingConfig
from clipgate.models import ClipKey, ClipSpec

MAX_IMAGE_BYTES = 10 * 1024 * 1024

_log = logging.getLogger(__name__)


class _SharedHTTP:
    """One connection pool per generator, opened on first use and shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def get(self, config: KlingConfig) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = open_http(config)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@dataclass(frozen=True)
class KlingGenerator:
    """Makes a clip with Kling image2video from the clip's still and motion prompt."""

    config: KlingConfig
    name: str = "kling"
    _http: _SharedHTTP = field(default_factory=_SharedHTTP, init=False, repr=False, compare=False)

    def close(self) -> None:
        """Close the connection pool; a later clip opens a new one."""
        self._http.close()

    def generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> GenerationResult:
        try:
            task = self._generate(key, spec, output)
        except (GenerationError, ConfigurationError) as error:
            raise type(error)(f"clip {key.number} (attempt {key.attempt}): {error}") from None
        return GenerationResult(
            generator=self.name,
            cost_usd=self.config.price_usd,
            external_task_id=task.task_id,
            provider_url_expires_at=task.video_url_expires_at,
        )

    def _generate(self, key: ClipKey, spec: ClipSpec, output: Path) -> KlingTask:
        if output.exists():
            raise GenerationError(f"{output} already exists; a clip is never overwritten")
        output.parent.mkdir(parents=True, exist_ok=True)
        label = f"clip {key.number} (attempt {key.attempt})"
        with KlingClient(self.config, http=self._http.get(self.config), label=label) as client:
            task = client.find_task(key.token)
            if task is None:
                task = client.start_task(self.request_body(key, spec))
            else:
                _log.info("resuming Kling task %s (%s)", key.token, task.status)
            task = client.wait_for(task)
            client.download(task.video_url, output)
        return task

    def request_body(self, key: ClipKey, spec: ClipSpec) -> dict[str, str]:
        """The image2video request for one clip attempt."""
        image = spec.composite_image
        if not image.is_file():
            raise GenerationError(f"composite image {image} does not exist")
        size = image.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise GenerationError(
                f"composite image {image} is {size} bytes; Kling takes at most {MAX_IMAGE_BYTES}"
            )
        body = {
            "model_name": self.config.model,
            "mode": self.config.mode,
            "duration": self.config.duration,
            "image": base64.b64encode(image.read_bytes()).decode("ascii"),
            "prompt": spec.motion_prompt,
            "external_task_id": key.token,
        }
        if self.config.negative_prompt:
            body["negative_prompt"] = self.config.negative_prompt
        return body
