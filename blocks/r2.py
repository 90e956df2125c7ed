"""The Prefect Block holding a channel's R2 bucket and credentials."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from clipgate.storage.r2 import PRESIGNED_LINK_LIFETIME, R2Config, R2Storage, r2_storage


class R2Bucket(Block):
    """An R2 bucket that clips are stored in, and the public address reviewers open them at."""

    _block_type_name = "clipgate R2 bucket"
    _description = (
        "A Cloudflare R2 bucket for clips: S3 API credentials of an R2 API token, and the "
        "bucket's public address (custom domain or r2.dev) that reviewers' links start with."
    )

    account_id: str = Field(
        description="Cloudflare account id, the 32 hex characters on the R2 overview page"
    )
    access_key_id: str = Field(description="Access Key ID of an R2 API token")
    secret_access_key: SecretStr = Field(description="Secret Access Key of that R2 API token")
    bucket: str = Field(description="The bucket clips are stored in")
    public_base_url: str = Field(
        default="",
        description=(
            "Where reviewers open clips: the bucket's custom domain (https://clips.example.com) "
            "or its r2.dev address (https://pub-<hash>.r2.dev). Not the S3 API endpoint."
        ),
    )
    presigned_links: bool = Field(
        default=False,
        description=(
            "Without a public_base_url, give reviewers presigned links instead. They expire "
            f"after {PRESIGNED_LINK_LIFETIME.days} days; a review left longer has dead links."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description=(
            "S3 API endpoint override, for tests or another S3-compatible store; "
            "empty means https://<account_id>.r2.cloudflarestorage.com"
        ),
    )

    def r2_config(self) -> R2Config:
        """The core's view of this block."""
        return R2Config(
            account_id=self.account_id,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            bucket=self.bucket,
            public_base_url=self.public_base_url,
            presigned_links=self.presigned_links,
            endpoint_url=self.endpoint_url,
        )

    def storage(self) -> R2Storage:
        """Clip storage on this bucket, checked before the first clip."""
        return r2_storage(self.r2_config())
