"""moto's S3 server on a free local port: a real HTTP endpoint that speaks the S3 API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@contextmanager
def running_moto_server() -> Iterator[str]:
    """Serve moto on 127.0.0.1 for the duration of the block; yields its base URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def admin_client(endpoint: str) -> S3Client:
    """A plain S3 client on `endpoint` for setting up and inspecting buckets behind clipgate."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIATEST",
        aws_secret_access_key="admin-secret",  # noqa: S106
    )


def create_public_bucket(admin: S3Client) -> str:
    """A fresh empty bucket anyone may read, as an R2 bucket behind its public address."""
    name = f"clips-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name)
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{name}/*",
            }
        ],
    }
    admin.put_bucket_policy(Bucket=name, Policy=json.dumps(public_read))
    return name
