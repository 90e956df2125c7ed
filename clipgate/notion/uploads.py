"""Clip files into Notion with the File Upload API: single part up to 20 MB, else parts.

An upload left half-sent costs nothing and expires within the hour, so after any step
that may or may not have arrived the upload is simply started again; only the step that
makes it `uploaded` is checked first, so that a file Notion already took is not sent twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipgate.errors import AmbiguousWrite
from clipgate.notion.gateway import NotionGateway

SINGLE_PART_LIMIT = 20 * 1024 * 1024
PART_BYTES = 10 * 1024 * 1024


class FileUploads:
    """Uploads files to one workspace; each upload's id is what a row or block attaches."""

    def __init__(self, gateway: NotionGateway) -> None:
        self.gateway = gateway

    def upload(self, path: Path, name: str) -> str:
        """Upload the file as `name`; the id of the upload, ready to attach."""
        # A restarted upload is a new one: there is nothing of the earlier try to find.
        return self.gateway.write_or_find(
            f"upload {name}", lambda: self._upload_once(path, name), lambda: None
        )

    def _upload_once(self, path: Path, name: str) -> str:
        size = path.stat().st_size
        client = self.gateway.client.file_uploads
        if size <= SINGLE_PART_LIMIT:
            upload = self._create(mode="single_part", filename=name, content_type="video/mp4")
            with path.open("rb") as source:
                self._finish_step(
                    upload["id"], f"send {name}", client.send,
                    file_upload_id=upload["id"], file=(name, source, "video/mp4"),
                )  # fmt: skip
            return str(upload["id"])
        parts = math.ceil(size / PART_BYTES)
        upload = self._create(
            mode="multi_part", filename=name, content_type="video/mp4", number_of_parts=parts
        )
        with path.open("rb") as source:
            for part_number in range(1, parts + 1):
                chunk = source.read(PART_BYTES)
                self.gateway.write_once(
                    f"send part {part_number}/{parts} of {name}", client.send,
                    file_upload_id=upload["id"], file=(name, chunk, "video/mp4"),
                    part_number=str(part_number),
                )  # fmt: skip
        self._finish_step(
            upload["id"], f"complete {name}", client.complete, file_upload_id=upload["id"]
        )
        return str(upload["id"])

    def _create(self, **arguments: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.gateway.write_once(
            "start a file upload", self.gateway.client.file_uploads.create, **arguments
        )
        return created

    def _finish_step(
        self, upload_id: str, what: str, call: Callable[..., Any], **arguments: Any
    ) -> None:
        """The step that makes an upload `uploaded`; if it may have happened, ask Notion."""
        try:
            self.gateway.write_once(what, call, **arguments)
        except AmbiguousWrite:
            upload = self.gateway.send_repeatable(
                "check an upload", self.gateway.client.file_uploads.retrieve,
                file_upload_id=upload_id,
            )  # fmt: skip
            if upload.get("status") != "uploaded":
                raise
