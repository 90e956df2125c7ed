"""R2 clip storage against moto's S3 server over real HTTP, and the bytes an R2 client sends."""

from __future__ import annotations

import hashlib
import logging
import random
import socket
import struct
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from moto.core.authorization import enable_iam_authentication
from pydantic import SecretStr

from blocks.r2 import R2Bucket
from clipgate.errors import ConfigurationError, StorageError
from clipgate.models import CLIP_COUNT, ClipKey
from clipgate.storage.r2 import (
    IMMUTABLE_CACHE_CONTROL,
    MIB,
    PRESIGNED_LINK_LIFETIME,
    R2_RETRIES,
    R2Config,
    R2Storage,
    r2_storage,
)
from tests.fakes.moto_server import create_public_bucket, running_moto_server
from tests.log_helpers import retry_warnings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY_ID = "AKIACLIPGATETEST0001"
# Made up; the tests look for it in every error and log line.
SECRET = "clipgate-test-secret-Zq9vX2mK7pL4"  # noqa: S105
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
R2_ENDPOINT = f"https://{ACCOUNT_ID}.r2.cloudflarestorage.com"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server, started for this module on a free local port."""
    with running_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def admin(moto_endpoint: str) -> S3Client:
    """A plain S3 client for setting up and inspecting the bucket behind the storage's back."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture
def bucket(admin: S3Client) -> str:
    """A fresh empty bucket anyone may read, as an R2 bucket behind its public address."""
    return create_public_bucket(admin)


@pytest.fixture
def make_config(moto_endpoint: str, bucket: str) -> Callable[..., R2Config]:
    """Builds an R2 config aimed at moto, public links on moto's path-style object URLs."""

    def make(**overrides: Any) -> R2Config:
        values: dict[str, Any] = {
            "account_id": ACCOUNT_ID,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SecretStr(SECRET),
            "bucket": bucket,
            "public_base_url": f"{moto_endpoint}/{bucket}",
            "endpoint_url": moto_endpoint,
        } | overrides
        return R2Config(**values)

    return make


@pytest.fixture(scope="module")
def large_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip of 11 MiB and a bit: above a 5 MiB threshold, three parts of 5 MiB."""
    return write_clip(tmp_path_factory.mktemp("large") / "large.mp4", seed=99, size=11 * MIB + 123)


def write_clip(path: Path, seed: int, size: int) -> Path:
    """An ftyp box then incompressible bytes, like an encoded clip."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 512) + b"isomavc1"
    path.write_bytes(ftyp + random.Random(seed).randbytes(size - len(ftyp)))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clip_key(number: int, attempt: int = 1) -> ClipKey:
    return ClipKey(project_id="proj-1", channel="history", number=number, attempt=attempt)


@contextmanager
def sent_operations(client: S3Client) -> Iterator[list[str]]:
    """Names of the operations the client actually sends while the block runs."""
    sent: list[str] = []

    def record(event_name: str, **_: object) -> None:
        sent.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send.s3", record)
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-send.s3", record)


def test_eighteen_clips_are_stored_once_and_a_second_run_uploads_nothing(
    tmp_path: Path, make_config: Callable[..., R2Config], admin: S3Client, bucket: str
) -> None:
    """18 clips go up with video/mp4, immutable caching and their sha256; a rerun sends none."""
    storage = r2_storage(make_config())
    clips = {
        number: write_clip(tmp_path / f"clip-{number}.mp4", seed=number, size=40_000 + number * 997)
        for number in range(1, CLIP_COUNT + 1)
    }

    first = [storage.put_clip(clip_key(n), path, sha256_of(path)) for n, path in clips.items()]

    assert all(stored.uploaded for stored in first)
    for stored in first:
        head = admin.head_object(Bucket=bucket, Key=stored.object_key)
        assert head["ContentType"] == "video/mp4"
        assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL
        assert head["Metadata"] == {"sha256": stored.sha256}
        assert head["ContentLength"] == stored.size_bytes
    seven = first[6]
    assert seven.object_key == "history/proj-1/clip-07/attempt-1.mp4"
    assert seven.url == f"{storage.config.public_base_url}/history/proj-1/clip-07/attempt-1.mp4"
    assert seven.location == f"r2://{bucket}/history/proj-1/clip-07/attempt-1.mp4"
    assert storage.link_lifetime is None

    with sent_operations(storage.client) as sent:
        second = [storage.put_clip(clip_key(n), path, sha256_of(path)) for n, path in clips.items()]

    assert not any(stored.uploaded for stored in second)
    assert sent == ["HeadObject"] * CLIP_COUNT
    assert [stored.url for stored in second] == [stored.url for stored in first]


def test_reviewer_link_serves_a_ranged_get_with_206_and_the_right_bytes(
    tmp_path: Path, make_config: Callable[..., R2Config]
) -> None:
    """A player's Range request on the stored link gets 206 and exactly those bytes."""
    clip = write_clip(tmp_path / "clip.mp4", seed=3, size=300_000)
    stored = r2_storage(make_config()).put_clip(clip_key(3), clip, sha256_of(clip))

    response = httpx.get(stored.url, headers={"Range": "bytes=1000-4999"})

    assert response.status_code == 206
    assert response.content == clip.read_bytes()[1000:5000]
    assert response.headers["Content-Range"] == "bytes 1000-4999/300000"


def test_file_above_the_threshold_goes_up_in_equal_parts(
    large_clip: Path, make_config: Callable[..., R2Config], admin: S3Client, bucket: str
) -> None:
    """Above the threshold a clip is sent as equal 5 MiB parts plus the rest, whole on arrival."""
    storage = r2_storage(
        make_config(multipart_threshold_bytes=5 * MIB, multipart_part_bytes=5 * MIB)
    )
    part_sizes: list[int] = []

    def record_part(request: AWSPreparedRequest, **_: object) -> None:
        part_sizes.append(int(request.headers["Content-Length"]))

    storage.client.meta.events.register("before-send.s3.UploadPart", record_part)
    stored = storage.put_clip(clip_key(12, attempt=2), large_clip, sha256_of(large_clip))

    assert stored.uploaded
    assert part_sizes == [5 * MIB, 5 * MIB, MIB + 123]
    got = admin.get_object(Bucket=bucket, Key=stored.object_key)
    assert got["ETag"].strip('"').endswith("-3")
    assert got["Metadata"] == {"sha256": stored.sha256}
    assert got["ContentType"] == "video/mp4"
    assert got["Body"].read() == large_clip.read_bytes()


def test_an_object_with_other_bytes_is_never_overwritten(
    tmp_path: Path, make_config: Callable[..., R2Config], admin: S3Client, bucket: str
) -> None:
    """A key already holding different bytes is a StorageError naming the key, left untouched."""
    key = clip_key(5)
    admin.put_object(Bucket=bucket, Key=key.object_key, Body=b"an older clip")
    clip = write_clip(tmp_path / "clip.mp4", seed=5, size=50_000)

    with pytest.raises(StorageError, match=key.object_key):
        r2_storage(make_config()).put_clip(key, clip, sha256_of(clip))

    assert admin.get_object(Bucket=bucket, Key=key.object_key)["Body"].read() == b"an older clip"


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_an_object_written_between_look_and_upload_is_not_overwritten(
    same_bytes: bool,
    tmp_path: Path,
    make_config: Callable[..., R2Config],
    admin: S3Client,
    bucket: str,
) -> None:
    """If another run stores the key first, its object stays: same bytes pass, others fail."""
    key = clip_key(9)
    clip = write_clip(tmp_path / "clip.mp4", seed=9, size=60_000)
    competitor = clip.read_bytes() if same_bytes else b"another run's clip"
    storage = r2_storage(make_config())

    def other_run_stores_first(**_: object) -> None:
        admin.put_object(
            Bucket=bucket,
            Key=key.object_key,
            Body=competitor,
            Metadata={"sha256": hashlib.sha256(competitor).hexdigest()},
        )

    storage.client.meta.events.register("before-call.s3.PutObject", other_run_stores_first)

    if same_bytes:
        assert not storage.put_clip(key, clip, sha256_of(clip)).uploaded
    else:
        with pytest.raises(StorageError, match=key.object_key):
            storage.put_clip(key, clip, sha256_of(clip))
    assert admin.get_object(Bucket=bucket, Key=key.object_key)["Body"].read() == competitor


def test_a_multipart_upload_that_loses_the_race_is_aborted_and_overwrites_nothing(
    large_clip: Path, make_config: Callable[..., R2Config], admin: S3Client, bucket: str
) -> None:
    """If another run stores the key while parts go up, the parts are dropped, its object kept."""
    key = clip_key(11)
    storage = r2_storage(
        make_config(multipart_threshold_bytes=5 * MIB, multipart_part_bytes=5 * MIB)
    )

    def other_run_stores_first(**_: object) -> None:
        admin.put_object(Bucket=bucket, Key=key.object_key, Body=b"another run's clip")

    storage.client.meta.events.register(
        "before-call.s3.CompleteMultipartUpload", other_run_stores_first
    )

    with pytest.raises(StorageError, match=key.object_key):
        storage.put_clip(key, large_clip, sha256_of(large_clip))

    got = admin.get_object(Bucket=bucket, Key=key.object_key)["Body"].read()
    assert got == b"another run's clip"
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_a_key_taken_while_parts_go_up_is_found_before_completing(
    same_bytes: bool,
    large_clip: Path,
    make_config: Callable[..., R2Config],
    admin: S3Client,
    bucket: str,
) -> None:
    """Another run stores the key mid-upload: the look before completing finds it and aborts."""
    key = clip_key(13)
    storage = r2_storage(
        make_config(multipart_threshold_bytes=5 * MIB, multipart_part_bytes=5 * MIB)
    )
    competitor = large_clip.read_bytes() if same_bytes else b"another run's clip"

    def other_run_stores_first(**_: object) -> None:
        storage.client.meta.events.unregister("before-call.s3.UploadPart", other_run_stores_first)
        admin.put_object(
            Bucket=bucket,
            Key=key.object_key,
            Body=competitor,
            Metadata={"sha256": hashlib.sha256(competitor).hexdigest()},
        )

    storage.client.meta.events.register("before-call.s3.UploadPart", other_run_stores_first)

    with sent_operations(storage.client) as sent:
        if same_bytes:
            assert not storage.put_clip(key, large_clip, sha256_of(large_clip)).uploaded
        else:
            with pytest.raises(StorageError, match=key.object_key):
                storage.put_clip(key, large_clip, sha256_of(large_clip))

    assert "CompleteMultipartUpload" not in sent
    assert sent[-2:] == ["HeadObject", "AbortMultipartUpload"]
    assert admin.get_object(Bucket=bucket, Key=key.object_key)["Body"].read() == competitor
    assert admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_thumbnail_goes_up_beside_its_clip(
    tmp_path: Path, make_config: Callable[..., R2Config], admin: S3Client, bucket: str
) -> None:
    """A thumbnail is stored next to its clip with an image content type."""
    key = clip_key(7, attempt=2)
    thumbnail = tmp_path / "thumb.jpg"
    thumbnail.write_bytes(b"\xff\xd8\xff\xe0" + random.Random(7).randbytes(8_000) + b"\xff\xd9")
    thumbnail_key = key.object_key.removesuffix(".mp4") + ".jpg"

    stored = r2_storage(make_config()).put_file(thumbnail_key, thumbnail, sha256_of(thumbnail))

    assert stored.object_key == "history/proj-1/clip-07/attempt-2.jpg"
    head = admin.head_object(Bucket=bucket, Key=thumbnail_key)
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL
    assert httpx.get(stored.url).content == thumbnail.read_bytes()


def test_presigned_links_are_opt_in_and_expire_after_seven_days(
    tmp_path: Path, make_config: Callable[..., R2Config]
) -> None:
    """Without a public address, opted-in presigned links play, and say they expire in 7 days."""
    storage = r2_storage(make_config(public_base_url="", presigned_links=True))
    clip = write_clip(tmp_path / "clip.mp4", seed=4, size=20_000)

    stored = storage.put_clip(clip_key(4), clip, sha256_of(clip))

    assert storage.link_lifetime == PRESIGNED_LINK_LIFETIME
    assert "X-Amz-Expires=604800" in stored.url
    response = httpx.get(stored.url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response.content == clip.read_bytes()[:100]


def test_missing_public_base_url_stops_with_what_to_set(
    make_config: Callable[..., R2Config],
) -> None:
    """Without a public address or presigned links, building the storage says what to set."""
    with pytest.raises(ConfigurationError) as raised:
        R2Storage(make_config(public_base_url=""))

    message = str(raised.value)
    assert "public_base_url" in message
    assert "r2.dev" in message
    assert "presigned_links" in message


def test_the_s3_api_endpoint_is_refused_as_a_public_address(
    make_config: Callable[..., R2Config],
) -> None:
    """R2's S3 API endpoint is not a link a reviewer can open, so it is refused."""
    with pytest.raises(ConfigurationError, match="S3 API endpoint"):
        R2Storage(make_config(public_base_url=f"{R2_ENDPOINT}/clips"))


def test_wrong_credentials_are_a_clear_error_before_the_first_clip_and_never_shown(
    make_config: Callable[..., R2Config], caplog: pytest.LogCaptureFixture
) -> None:
    """A bad key stops storage being built, names what to fix, and never shows the secret."""
    caplog.set_level(logging.DEBUG)
    with enable_iam_authentication(), pytest.raises(ConfigurationError) as raised:
        r2_storage(make_config())

    message = str(raised.value)
    assert "access_key_id" in message
    assert "secret_access_key" in message
    full_report = "".join(traceback.format_exception(raised.value))
    assert SECRET not in full_report
    assert SECRET not in caplog.text


def test_missing_bucket_is_a_clear_error_before_the_first_clip(
    make_config: Callable[..., R2Config],
) -> None:
    """A bucket that does not exist stops storage being built and names the bucket."""
    with pytest.raises(ConfigurationError, match="'no-such-bucket' does not exist") as raised:
        r2_storage(make_config(bucket="no-such-bucket"))

    assert SECRET not in str(raised.value)


def test_unreachable_endpoint_is_a_clear_error_before_the_first_clip(
    make_config: Callable[..., R2Config],
) -> None:
    """An endpoint nobody answers on stops storage being built and points at account_id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(ConfigurationError, match="account_id"):
        r2_storage(make_config(endpoint_url=f"http://127.0.0.1:{closed_port}"))


@dataclass(frozen=True)
class SentRequest:
    operation: str
    url: str
    headers: dict[str, str]


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._content


_R2_ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "HeadObject": (404, {}, b""),
    "PutObject": (200, {"ETag": '"put"'}, b""),
    "CreateMultipartUpload": (
        200,
        {},
        b"<InitiateMultipartUploadResult><UploadId>upload-1</UploadId>"
        b"</InitiateMultipartUploadResult>",
    ),
    "UploadPart": (200, {"ETag": '"part"'}, b""),
    "CompleteMultipartUpload": (
        200,
        {},
        b'<CompleteMultipartUploadResult><ETag>"done-3"</ETag></CompleteMultipartUploadResult>',
    ),
}


@contextmanager
def requests_kept_on_this_machine(client: S3Client) -> Iterator[list[SentRequest]]:
    """Capture every request the client would send, and answer it as R2 would; none leaves."""
    sent: list[SentRequest] = []

    def answer(request: AWSPreparedRequest, event_name: str, **_: object) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        sent.append(SentRequest(operation, request.url, headers))
        status, answer_headers, body = _R2_ANSWERS[operation]
        response_headers = HTTPHeaders()
        for name, value in answer_headers.items():
            response_headers[name] = value
        return AWSResponse(request.url, status, response_headers, _Body(body))

    # The stubs type every handler as returning None; before-send handlers may answer instead.
    client.meta.events.register("before-send.s3", answer)  # type: ignore[arg-type]
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-send.s3", answer)  # type: ignore[arg-type]


def streaming_checksum_headers(request: SentRequest) -> dict[str, str]:
    """The headers R2 refuses: aws-chunked bodies, checksum trailers and checksum headers."""
    return {
        name: value
        for name, value in request.headers.items()
        if name in ("x-amz-trailer", "x-amz-sdk-checksum-algorithm", "x-amz-decoded-content-length")
        or name.startswith("x-amz-checksum-")
        or (name == "content-encoding" and "aws-chunked" in value)
        or (name == "x-amz-content-sha256" and value.startswith("STREAMING-"))
    }


def test_uploads_to_r2_carry_no_streaming_checksum_or_acl(tmp_path: Path, large_clip: Path) -> None:
    """Single and multipart uploads to the real R2 endpoint send nothing R2 would refuse."""
    storage = R2Storage(
        R2Config(
            account_id=ACCOUNT_ID,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SecretStr(SECRET),
            bucket="clips",
            public_base_url="https://clips.example.com",
            multipart_threshold_bytes=5 * MIB,
            multipart_part_bytes=5 * MIB,
        )
    )
    small = write_clip(tmp_path / "small.mp4", seed=1, size=30_000)

    with requests_kept_on_this_machine(storage.client) as sent:
        single = storage.put_clip(clip_key(1), small, sha256_of(small))
        parts = storage.put_clip(clip_key(2), large_clip, sha256_of(large_clip))

    assert single.uploaded
    assert parts.uploaded
    assert single.url == "https://clips.example.com/history/proj-1/clip-01/attempt-1.mp4"
    assert [request.operation for request in sent] == [
        "HeadObject",
        "PutObject",
        "HeadObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "HeadObject",
        "CompleteMultipartUpload",
    ]
    conditional = {r.operation: r.headers.get("if-none-match") for r in sent}
    assert conditional["PutObject"] == "*"
    assert conditional["CompleteMultipartUpload"] == "*"
    for request in sent:
        assert request.url.startswith(f"{R2_ENDPOINT}/clips/history/proj-1/")
        assert streaming_checksum_headers(request) == {}
        assert "x-amz-acl" not in request.headers
        assert "/auto/s3/aws4_request" in request.headers["authorization"]
        assert SECRET not in request.headers["authorization"]
    uploads = [r for r in sent if r.operation in ("PutObject", "UploadPart")]
    assert [r.headers["content-length"] for r in uploads] == [
        "30000",
        str(5 * MIB),
        str(5 * MIB),
        str(MIB + 123),
    ]


def test_the_header_check_catches_boto3s_default_streaming_checksum(tmp_path: Path) -> None:
    """A client left on boto3's defaults shows the aws-chunked trailer the check looks for."""
    default_client = boto3.client(
        "s3",
        endpoint_url=R2_ENDPOINT,
        region_name="auto",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )
    small = write_clip(tmp_path / "small.mp4", seed=1, size=30_000)

    with requests_kept_on_this_machine(default_client) as sent, small.open("rb") as body:
        default_client.put_object(Bucket="clips", Key="probe.mp4", Body=body)

    assert "x-amz-trailer" in streaming_checksum_headers(sent[0])


def test_the_block_holds_the_core_config_and_hides_the_secret() -> None:
    """The R2 block wraps the core's config as it is and never prints the secret."""
    config = R2Config(
        account_id=ACCOUNT_ID,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SecretStr(SECRET),
        bucket="clips",
        public_base_url="https://clips.example.com",
    )

    block = R2Bucket(config=config)

    assert block.config == config
    assert block.config.resolved_endpoint_url == R2_ENDPOINT
    assert SECRET not in repr(block)
    assert SECRET not in repr(config)


# What R2 answers instead of moto: (HTTP status, S3 error code, headers), or an exception.
Scripted = tuple[int, str, dict[str, str]] | Exception


@contextmanager
def r2_answers_first(
    client: S3Client, operation: str, answers: list[Scripted]
) -> Iterator[list[str]]:
    """R2 gives these answers to the next `operation` requests; moto answers everything else.

    Yields the names of the operations sent, scripted or not.
    """
    pending = deque(answers)
    sent: list[str] = []

    def answer(request: AWSPreparedRequest, event_name: str, **_: object) -> AWSResponse | None:
        name = event_name.rsplit(".", 1)[-1]
        sent.append(name)
        if name != operation or not pending:
            return None
        scripted = pending.popleft()
        if isinstance(scripted, Exception):
            raise scripted
        status, code, headers = scripted
        response_headers = HTTPHeaders()
        for header, value in headers.items():
            response_headers[header] = value
        body = f"<Error><Code>{code}</Code><Message>scripted {code}</Message></Error>"
        return AWSResponse(request.url, status, response_headers, _Body(body.encode()))

    client.meta.events.register("before-send.s3", answer)  # type: ignore[arg-type]
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-send.s3", answer)  # type: ignore[arg-type]


def test_r2_slowing_an_upload_down_is_ridden_out_after_its_retry_after(
    make_config: Callable[..., R2Config],
    admin: S3Client,
    bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """503 SlowDown, Retry-After: 2, then moto: logged as a 2 s wait, sent again, stored once."""
    storage = r2_storage(make_config())
    clip = write_clip(tmp_path / "clip.mp4", seed=7, size=40_000)
    slow_down: Scripted = (503, "SlowDown", {"Retry-After": "2"})

    with r2_answers_first(storage.client, "PutObject", [slow_down]) as sent:
        stored = storage.put_clip(clip_key(7), clip, sha256_of(clip))

    assert stored.uploaded
    assert sent.count("PutObject") == 2
    key = clip_key(7).object_key
    assert admin.get_object(Bucket=bucket, Key=key)["Body"].read() == clip.read_bytes()
    (warning,) = retry_warnings(caplog)
    assert warning.startswith(f"R2 upload of {key}: ")
    assert "SlowDown" in warning
    assert warning.endswith("; retry 1 of 5 in 2.0 s")


def test_a_look_up_that_times_out_is_sent_again(
    make_config: Callable[..., R2Config], tmp_path: Path
) -> None:
    """A HeadObject whose answer never came is repeated; the upload then goes ahead."""
    storage = r2_storage(make_config())
    clip = write_clip(tmp_path / "clip.mp4", seed=8, size=40_000)
    timeout = ReadTimeoutError(endpoint_url=storage.config.resolved_endpoint_url)

    with r2_answers_first(storage.client, "HeadObject", [timeout]) as sent:
        stored = storage.put_clip(clip_key(8), clip, sha256_of(clip))

    assert stored.uploaded
    assert sent == ["HeadObject", "HeadObject", "PutObject"]


def test_an_upload_r2_keeps_failing_stops_after_the_policys_attempts(
    make_config: Callable[..., R2Config], tmp_path: Path
) -> None:
    """500 on every PutObject: exactly R2_RETRIES.attempts sent (boto3 adds none), then an error."""
    storage = r2_storage(make_config())
    clip = write_clip(tmp_path / "clip.mp4", seed=9, size=40_000)
    failing: list[Scripted] = [(500, "InternalError", {})] * 20

    with (
        r2_answers_first(storage.client, "PutObject", failing) as sent,
        pytest.raises(StorageError, match="InternalError"),
    ):
        storage.put_clip(clip_key(9), clip, sha256_of(clip))

    assert sent.count("PutObject") == R2_RETRIES.attempts


def test_a_refused_upload_is_not_retried(
    make_config: Callable[..., R2Config], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """403 AccessDenied on PutObject: one request, a configuration error, no retry warning."""
    storage = r2_storage(make_config())
    clip = write_clip(tmp_path / "clip.mp4", seed=10, size=40_000)

    with (
        r2_answers_first(storage.client, "PutObject", [(403, "AccessDenied", {})]) as sent,
        pytest.raises(ConfigurationError, match="AccessDenied"),
    ):
        storage.put_clip(clip_key(10), clip, sha256_of(clip))

    assert sent.count("PutObject") == 1
    assert retry_warnings(caplog) == []
