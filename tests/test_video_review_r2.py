"""The gate with a channel that keeps its clips in R2 (moto's S3 server over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from clipgate.models import VideoProject
from clipgate.settings import Settings, load_settings
from clipgate.wiring import build_store
from tests.fakes.moto_server import admin_client, create_public_bucket, running_moto_server
from tests.flow_helpers import FlowInThread, answer, paused_round

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def r2_channel(
    settings: Settings, project: VideoProject, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Settings that store the project's channel in a fresh, publicly readable bucket."""
    with running_moto_server() as endpoint:
        bucket = create_public_bucket(admin_client(endpoint))
        public_base_url = f"{endpoint}/{bucket}"
        monkeypatch.setenv("CLIPGATE_CHANNEL_STORAGE", f'{{"{project.channel}": "r2"}}')
        monkeypatch.setenv("CLIPGATE_R2__ACCOUNT_ID", ACCOUNT_ID)
        monkeypatch.setenv("CLIPGATE_R2__ACCESS_KEY_ID", "AKIATEST")
        monkeypatch.setenv("CLIPGATE_R2__SECRET_ACCESS_KEY", "r2-secret")
        monkeypatch.setenv("CLIPGATE_R2__BUCKET", bucket)
        monkeypatch.setenv("CLIPGATE_R2__ENDPOINT_URL", endpoint)
        monkeypatch.setenv("CLIPGATE_R2__PUBLIC_BASE_URL", public_base_url)
        yield public_base_url


@pytest.mark.usefixtures("prefect_api_url")
def test_clips_of_an_r2_channel_are_linked_from_the_bucket(
    r2_channel: str, project: VideoProject
) -> None:
    """Every clip and thumbnail is in the bucket, linked by public URL, and plays by range."""
    settings = load_settings()
    assert settings.storage_for(project.channel) == "r2"
    store = build_store(settings)
    run = FlowInThread(project)
    run_id = paused_round(store, project.project_id, 1)
    answer(run_id, {"decision": "approve"})
    summary = run.finish()

    assert len(summary.clips) == 18
    for clip in summary.clips:
        key = f"{project.channel}/{project.project_id}/clip-{clip.number:02d}/attempt-1.mp4"
        assert clip.url == f"{r2_channel}/{key}"
        assert clip.location == f"r2://{r2_channel.rsplit('/', 1)[1]}/{key}"
    first = summary.clips[0]
    whole = httpx.get(first.url)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"
    thumbnail = httpx.get(first.url.removesuffix(".mp4") + ".jpg")
    assert thumbnail.status_code == 200
    assert thumbnail.content[:2] == b"\xff\xd8"


@pytest.mark.usefixtures("prefect_api_url")
def test_the_links_notion_and_the_review_room_get_answer_range_requests(
    r2_channel: str, project: VideoProject
) -> None:
    """Every stored clip link plays as a player asks: 206 with Content-Range, open or closed."""
    store = build_store(load_settings())
    run = FlowInThread(project)
    answer(paused_round(store, project.project_id, 1), {"decision": "approve"})
    run.finish()

    links = [clip.url for clip in store.clips(project.project_id)]
    assert len(links) == 18
    for link in links:
        assert link.startswith(r2_channel)
        whole = httpx.get(link).content
        size = len(whole)
        opening = httpx.get(link, headers={"Range": "bytes=0-"})
        middle = httpx.get(link, headers={"Range": "bytes=1000-1999"})
        tail = httpx.get(link, headers={"Range": "bytes=-512"})
        assert (opening.status_code, middle.status_code, tail.status_code) == (206, 206, 206)
        assert opening.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        assert opening.content == whole
        assert middle.headers["content-range"] == f"bytes 1000-1999/{size}"
        assert middle.content == whole[1000:2000]
        assert tail.headers["content-range"] == f"bytes {size - 512}-{size - 1}/{size}"
        assert tail.content == whole[-512:]
