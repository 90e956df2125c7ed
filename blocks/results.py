"""The per-clip cache on object storage: prefect-aws's S3Bucket block, set up for R2.

Prefect writes each result and its cache record together under the cache key (the
result store has no separate metadata storage unless a cache policy names one), so one
bucket folder holds the whole cache and every machine that loads the block shares it.
"""

from __future__ import annotations

from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

from clipgate.storage.r2 import R2Config

RESULTS_FOLDER = "prefect-results"


def results_bucket(config: R2Config) -> S3Bucket:
    """An S3Bucket block on the R2 (or other S3-compatible) bucket `config` names."""
    return S3Bucket(
        bucket_name=config.bucket,
        bucket_folder=RESULTS_FOLDER,
        credentials=AwsCredentials(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name="auto",
            aws_client_parameters=AwsClientParameters(
                endpoint_url=config.resolved_endpoint_url,
                # R2 refuses boto3's streamed uploads with a CRC32 trailer (clipgate.storage.r2).
                config={
                    "signature_version": "s3v4",
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                    "s3": {"addressing_style": "path"},
                },
            ),
        ),
    )
