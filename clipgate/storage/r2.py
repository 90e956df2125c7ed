"""Clips in Cloudflare R2 through its S3 API (boto3), linked for reviewers by a lasting URL.

What Cloudflare documents about R2 (developers.cloudflare.com/r2/...) that this module
relies on:
- The S3 API lives at `https://<account id>.r2.cloudflarestorage.com` with region `auto`
  (api/s3/api/). It is not a public URL: a link built on it does not play for a reviewer.
  Objects are public only through the bucket's custom domain or its r2.dev address
  (buckets/public-buckets/), which is the `public_base_url` links are built on. R2 has
  no ACLs, so none are sent.
- PutObject honours `If-None-Match: *` (api/s3/conditional-operations/), so a single
  upload never overwrites an object another run stored first.
- Multipart parts are 5 MiB to 5 GiB, all but the last the same size, at most 10,000
  (objects/multipart-objects/).
What is assumed, or not depended on:
- `If-None-Match` on CompleteMultipartUpload: the conditional-operations page lists it
  today, but whether R2 enforces it has been in doubt, so it is sent and not relied on.
  The object key is looked up before the upload is created and again before it is
  completed, and an upload that finds the key taken is aborted.
- A failed condition is answered like S3's (412, PreconditionFailed).
- The public address answers HTTP Range requests with 206, as players need; tested here
  against moto's server, not against R2.
- boto3 >= 1.36 streams uploads as aws-chunked bodies with a CRC32 trailer, which R2
  refuses (seen in practice); the client computes checksums only when an operation
  requires one.

Every request here is safe to send again (reads, writes conditional on If-None-Match,
parts that replace themselves, an abort), so each one is retried by `R2_RETRIES`
(clipgate.retries) when R2 throttles (429, SlowDown), fails inside (5xx, InternalError)
or the connection times out or drops, after R2's Retry-After when it sends one.
botocore's own retries are off, so that policy is the only one. A refused connection or
an unknown host is a wrong endpoint, and a 4xx a refusal: neither is retried.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clipgate.errors import ConfigurationError, StorageError
from clipgate.models import ClipKey
from clipgate.retries import RetryPolicy, Verdict, retry_after_s
from clipgate.storage import StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * 1024 * MIB
MAX_PARTS = 10_000
PRESIGNED_LINK_LIFETIME = timedelta(days=7)
"""The longest a SigV4 presigned URL can be valid; reviewers must open links before then."""

CLIP_CONTENT_TYPE = "video/mp4"
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
SHA256_METADATA_KEY = "sha256"

_ACCOUNT_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_S3_API_HOST_SUFFIX = ".r2.cloudflarestorage.com"
_CREDENTIAL_CODES = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId"}
_SIGNATURE_CODES = {"SignatureDoesNotMatch"}
_MISSING_BUCKET_CODES = {"404", "NoSuchBucket", "NotFound"}
_MISSING_OBJECT_CODES = {"404", "NoSuchKey", "NotFound"}
_ALREADY_EXISTS_CODES = {"412", "PreconditionFailed"}
_RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
_RETRYABLE_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}

R2_RETRIES = RetryPolicy(attempts=6, timeout_s=300.0, wait_initial_s=1.0, wait_max_s=20.0)
"""How each R2 request is retried: 6 tries within 5 minutes, waits doubling from 1 s to 16 s."""


class R2Config(BaseModel):
    """Everything needed to reach one R2 bucket; built from the R2 block or by a test."""

    model_config = ConfigDict(frozen=True)

    account_id: str = Field(description="Cloudflare account id (32 hex characters)")
    access_key_id: str = Field(description="Access Key ID of an R2 API token")
    secret_access_key: SecretStr = Field(description="Secret Access Key of that R2 API token")
    bucket: str = Field(description="The bucket clips are stored in")
    public_base_url: str = Field(
        default="",
        description=(
            "Public address of the bucket that reviewers' links start with: its custom domain "
            "(https://clips.example.com) or its r2.dev address (https://pub-<hash>.r2.dev)"
        ),
    )
    presigned_links: bool = Field(
        default=False,
        description=(
            "When public_base_url is empty, give reviewers presigned links instead; "
            "they expire after 7 days"
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint; empty means https://<account_id>.r2.cloudflarestorage.com",
    )
    multipart_threshold_bytes: int = Field(
        default=32 * MIB,
        ge=MIN_PART_BYTES,
        description="Files larger than this go up in parts",
    )
    multipart_part_bytes: int = Field(
        default=8 * MIB,
        ge=MIN_PART_BYTES,
        le=MAX_PART_BYTES,
        description="Size of every part but the last (R2 needs equal parts of at least 5 MiB)",
    )

    @property
    def resolved_endpoint_url(self) -> str:
        return self.endpoint_url or f"https://{self.account_id}{_S3_API_HOST_SUFFIX}"


def build_r2_client(config: R2Config) -> S3Client:
    """An S3 client for R2 as R2 accepts it: SigV4, region auto, no streaming checksums."""
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key.get_secret_value(),
        region_name="auto",
    )
    return session.client(
        "s3",
        endpoint_url=config.resolved_endpoint_url,
        config=Config(
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "total_max_attempts": 1},
        ),
    )


def _configuration_problems(config: R2Config) -> list[str]:
    problems = [
        f"set {name}"
        for name, value in (
            ("account_id", config.account_id),
            ("access_key_id", config.access_key_id),
            ("secret_access_key", config.secret_access_key.get_secret_value()),
            ("bucket", config.bucket),
        )
        if not value.strip()
    ]
    if not config.endpoint_url and config.account_id and not _ACCOUNT_ID.match(config.account_id):
        problems.append(
            f"account_id {config.account_id!r} is not a Cloudflare account id: copy the "
            "32-character hex id shown on the dashboard's R2 overview page"
        )
    if config.public_base_url:
        parts = urlsplit(config.public_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"public_base_url {config.public_base_url!r} is not an http(s) URL: use the "
                "bucket's custom domain (https://clips.example.com) or its "
                "https://pub-<hash>.r2.dev address"
            )
        elif (parts.hostname or "").endswith(_S3_API_HOST_SUFFIX):
            problems.append(
                f"public_base_url {config.public_base_url!r} is R2's S3 API endpoint, which "
                "reviewers cannot open: use the bucket's custom domain or its "
                "https://pub-<hash>.r2.dev address"
            )
    elif not config.presigned_links:
        problems.append(
            "set public_base_url to the bucket's custom domain (https://clips.example.com) or "
            "its r2.dev address (https://pub-<hash>.r2.dev) so reviewers get links that last; "
            "or set presigned_links to true to give them presigned links that expire after "
            f"{PRESIGNED_LINK_LIFETIME.days} days"
        )
    return problems


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _retryable(error: Exception) -> Verdict:
    """R2 throttling, failing inside or the connection dropping: retried, after Retry-After."""
    if isinstance(error, ClientError):
        metadata = error.response.get("ResponseMetadata", {})
        if (
            metadata.get("HTTPStatusCode") not in _RETRYABLE_STATUSES
            and _error_code(error) not in _RETRYABLE_CODES
        ):
            return False
        asked = retry_after_s(metadata.get("HTTPHeaders", {}).get("retry-after"))
        return True if asked is None else asked
    return isinstance(error, HTTPClientError | ConnectTimeoutError)


class R2Storage:
    """Stores each clip once in an R2 bucket under its object key; never overwrites other bytes.

    Links are `public_base_url + key` and last as long as the object. When the config opts
    into presigned links instead, `link_lifetime` is set and every `StoredObject.url` expires
    that long after it was made (at most 7 days); `link()` makes a fresh one.
    """

    name = "r2"

    def __init__(self, config: R2Config) -> None:
        problems = _configuration_problems(config)
        if problems:
            raise ConfigurationError("R2 storage is not set up: " + "; ".join(problems))
        self.config = config
        self.client = build_r2_client(config)
        self.link_lifetime: timedelta | None = (
            None if config.public_base_url else PRESIGNED_LINK_LIFETIME
        )

    def check(self) -> None:
        """Fail with a ConfigurationError saying what to fix unless the bucket is reachable."""
        bucket = self.config.bucket
        try:
            self._request(f"look-up of bucket {bucket}", self.client.head_bucket, Bucket=bucket)
        except ClientError as error:
            raise self._client_error_as_configuration(error) from error
        except BotoCoreError as error:
            raise ConfigurationError(
                f"cannot reach R2's S3 API at {self.config.resolved_endpoint_url} "
                f"({type(error).__name__}): check account_id (or endpoint_url) and the network"
            ) from error

    def put_clip(self, key: ClipKey, clip: Path, sha256: str) -> StoredObject:
        """Upload a finished clip under its clip key's object key, unless it is already there."""
        return self.put_file(key.object_key, clip, sha256, CLIP_CONTENT_TYPE)

    def put_file(
        self, object_key: str, path: Path, sha256: str, content_type: str | None = None
    ) -> StoredObject:
        """Upload any file (a thumbnail beside its clip) under `object_key`, unless already there.

        The content type is guessed from the file name when not given.
        """
        size = path.stat().st_size
        if self._already_holds(object_key, size, sha256):
            logger.info("R2 already holds %s; not sent again", object_key)
            return self._stored(object_key, size, sha256, uploaded=False)
        upload_args: dict[str, Any] = {
            "Bucket": self.config.bucket,
            "Key": object_key,
            "ContentType": content_type
            or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream",
            "CacheControl": IMMUTABLE_CACHE_CONTROL,
            "Metadata": {SHA256_METADATA_KEY: sha256},
        }
        try:
            if size > self.config.multipart_threshold_bytes:
                if not self._put_in_parts(path, size, sha256, upload_args):
                    return self._stored(object_key, size, sha256, uploaded=False)
            else:

                def put_once() -> None:
                    with path.open("rb") as body:
                        self.client.put_object(Body=body, IfNoneMatch="*", **upload_args)

                self._request(f"upload of {object_key}", put_once)
        except ClientError as error:
            # PreconditionFailed: another run stored this key between our look and our upload.
            if _error_code(error) in _ALREADY_EXISTS_CODES and self._already_holds(
                object_key, size, sha256
            ):
                return self._stored(object_key, size, sha256, uploaded=False)
            raise self._client_error_as_storage(error, object_key) from error
        except BotoCoreError as error:
            raise StorageError(
                f"could not upload {object_key} to R2 bucket {self.config.bucket!r}: {error}"
            ) from error
        logger.info("stored %s in R2 (%d bytes)", object_key, size)
        return self._stored(object_key, size, sha256, uploaded=True)

    def link(self, object_key: str) -> str:
        """The link a reviewer opens; presigned links expire after `link_lifetime`."""
        if self.config.public_base_url:
            return f"{self.config.public_base_url.rstrip('/')}/{quote(object_key, safe='/')}"
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.config.bucket, "Key": object_key},
            ExpiresIn=int(PRESIGNED_LINK_LIFETIME.total_seconds()),
        )

    def _already_holds(self, object_key: str, size: int, sha256: str) -> bool:
        """True if the object holds these bytes, False if absent; StorageError if other bytes."""
        try:
            head = self._request(
                f"look-up of {object_key}",
                self.client.head_object,
                Bucket=self.config.bucket,
                Key=object_key,
            )
        except ClientError as error:
            if _error_code(error) in _MISSING_OBJECT_CODES:
                return False
            raise self._client_error_as_storage(error, object_key) from error
        except BotoCoreError as error:
            raise StorageError(
                f"could not look up {object_key} in R2 bucket {self.config.bucket!r}: {error}"
            ) from error
        stored_sha256 = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        if head["ContentLength"] == size and stored_sha256 == sha256:
            return True
        raise self._overwrite_refused(object_key)

    def _put_in_parts(
        self, path: Path, size: int, sha256: str, upload_args: dict[str, Any]
    ) -> bool:
        """Upload in parts; False if another run stored these bytes first (nothing completed).

        The caller looked the key up just before; it is looked up again before completing,
        so an object stored meanwhile is never overwritten even if R2 ignored the
        condition on CompleteMultipartUpload. StorageError if it holds other bytes.
        """
        # Parts go up one after another: clips are tens of MB and the flow already stores
        # several clips at once, so threads here would only add memory.
        part_bytes = max(self.config.multipart_part_bytes, math.ceil(size / MAX_PARTS))
        bucket, object_key = upload_args["Bucket"], upload_args["Key"]
        upload_id = self._request(
            f"start of the upload of {object_key}",
            self.client.create_multipart_upload,
            **upload_args,
        )["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            with path.open("rb") as source:
                for number, chunk in enumerate(iter(lambda: source.read(part_bytes), b""), 1):
                    etag = self._request(
                        f"part {number} of {object_key}",
                        self.client.upload_part,
                        Bucket=bucket,
                        Key=object_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
            if self._already_holds(object_key, size, sha256):
                self._abort(bucket, object_key, upload_id)
                return False
            self._request(
                f"completion of the upload of {object_key}",
                self.client.complete_multipart_upload,
                Bucket=bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self._abort(bucket, object_key, upload_id)
            raise
        return True

    def _abort(self, bucket: str, object_key: str, upload_id: str) -> None:
        """Drop an unfinished upload: its parts are billed as storage until aborted."""
        try:
            self._request(
                f"abort of the upload of {object_key}",
                self.client.abort_multipart_upload,
                Bucket=bucket,
                Key=object_key,
                UploadId=upload_id,
            )
        except (ClientError, BotoCoreError):
            logger.warning("could not abort the unfinished upload of %s", object_key)

    def _request(
        self, what: str, operation: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """One S3 request, sent again as `R2_RETRIES` says; `what` names it in warnings."""
        return R2_RETRIES.call(
            lambda: operation(*args, **kwargs), retryable=_retryable, label=f"R2 {what}"
        )

    def _stored(self, object_key: str, size: int, sha256: str, uploaded: bool) -> StoredObject:
        return StoredObject(
            backend=self.name,
            object_key=object_key,
            location=f"r2://{self.config.bucket}/{object_key}",
            url=self.link(object_key),
            size_bytes=size,
            sha256=sha256,
            uploaded=uploaded,
        )

    def _overwrite_refused(self, object_key: str) -> StorageError:
        return StorageError(
            f"R2 bucket {self.config.bucket!r} already holds {object_key} with different bytes "
            "(size or sha256 metadata differ); stored objects are never overwritten. Delete it "
            "if it is stale, then rerun."
        )

    def _client_error_as_configuration(self, error: ClientError) -> ConfigurationError:
        code = _error_code(error)
        bucket, account = self.config.bucket, self.config.account_id
        if code in _SIGNATURE_CODES:
            fix = "secret_access_key is wrong: paste the Secret Access Key of the R2 API token"
        elif code in _CREDENTIAL_CODES:
            fix = (
                f"access_key_id or secret_access_key is wrong, or the API token may not use "
                f"bucket {bucket!r}: give an R2 API token with Object Read & Write on that "
                f"bucket, created in account {account!r}"
            )
        elif code in _MISSING_BUCKET_CODES:
            fix = (
                f"bucket {bucket!r} does not exist in account {account!r}: create it "
                f"(wrangler r2 bucket create {bucket}) or fix bucket / account_id"
            )
        else:
            fix = "check account_id, bucket and the API token"
        return ConfigurationError(f"R2 refused access to bucket {bucket!r} ({code}): {fix}")

    def _client_error_as_storage(
        self, error: ClientError, object_key: str
    ) -> ConfigurationError | StorageError:
        code = _error_code(error)
        if code in _CREDENTIAL_CODES | _SIGNATURE_CODES | {"NoSuchBucket"}:
            return self._client_error_as_configuration(error)
        return StorageError(
            f"R2 refused {object_key} in bucket {self.config.bucket!r} ({code}); rerun to retry"
        )


def r2_storage(config: R2Config) -> R2Storage:
    """R2 storage for a channel, checked against the bucket before the first clip is made."""
    storage = R2Storage(config)
    storage.check()
    return storage
