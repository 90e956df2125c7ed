"""The Prefect Block holding a channel's R2 bucket and credentials."""

from __future__ import annotations

from prefect.blocks.core import Block

from clipgate.storage.r2 import R2Config


class R2Bucket(Block):
    """An R2 bucket that clips are stored in, and the public address reviewers open them at."""

    _block_type_name = "clipgate R2 bucket"
    _description = (
        "A Cloudflare R2 bucket for clips: S3 API credentials of an R2 API token, and the "
        "bucket's public address (custom domain or r2.dev) that reviewers' links start with."
    )

    config: R2Config
