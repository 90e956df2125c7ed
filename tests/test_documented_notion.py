"""The local Notion refuses what Notion's documentation says Notion refuses.

Each test drives the fake through the official notion-client exactly as the documentation
describes one rule, so the fake cannot drift back into accepting what the real service
refuses. Sources (read late 2026):
- users/me: `bot.workspace_limits.max_file_upload_size_in_bytes` (notion-sdk-js
  src/api-endpoints/common.ts); free workspaces take 5 MiB per file, and multi-part
  uploads are for paid workspaces ("Working with files and media").
- Request limits: any URL at most 2,000 characters (400 validation_error), a payload at
  most 500 KB; file names at most 900 bytes ("Create a file upload").
- Status codes: 403 restricted_resource; 429 rate_limited and 529 service_overload ask
  the client to retry after Retry-After (notion-sdk-js src/errors.ts and Client.ts).
- Two-way relations name the reverse property in `dual_property.synced_property_name`.
- Webhooks (changelog 2026-10-15, "Event aggregation"): the first page.properties_updated
  event for a page arrives right away; later property edits in the next minute are
  combined into one event. Deliveries are signed `X-Notion-Signature: sha256=<hmac>`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from notion_client import APIResponseError, Client
from notion_client.errors import HTTPResponseError

from tests.fakes.notion_server import FakeNotion, SeededWorkspace
from tests.notion_workspace import SyncNotion, webhook_subscriber

FREE_LIMIT = 5 * 1024 * 1024
PAID_LIMIT = 5 * 1024 * 1024 * 1024


@pytest.fixture
def notion(fake: FakeNotion) -> Iterator[SyncNotion]:
    """The official client, its own retries off so every answer is seen."""
    with Client(auth=fake.token, base_url=fake.base_url, timeout_ms=5_000, retry=False) as client:
        yield SyncNotion(client)


def _refused(error: pytest.ExceptionInfo[APIResponseError], status: int, code: str) -> str:
    assert error.value.status == status
    assert str(getattr(error.value.code, "value", error.value.code)) == code
    body = json.loads(error.value.body)
    assert body["object"] == "error"
    assert body["status"] == status
    assert body["request_id"]
    message: str = body["message"]
    return message


def test_users_me_reports_the_workspace_upload_limit_by_plan(
    notion: SyncNotion, fake: FakeNotion
) -> None:
    """users/me tells the upload limit: 5 MiB on a free workspace, more on a paid one."""
    fake.set_plan("free")
    assert notion.users.me()["bot"]["workspace_limits"] == {
        "max_file_upload_size_in_bytes": FREE_LIMIT
    }
    fake.set_plan("paid")
    assert notion.users.me()["bot"]["workspace_limits"] == {
        "max_file_upload_size_in_bytes": PAID_LIMIT
    }


def test_a_free_workspace_refuses_files_over_its_limit_and_multi_part(
    notion: SyncNotion, fake: FakeNotion
) -> None:
    """On a free workspace a file over 5 MiB, or any multi-part upload, is a validation_error."""
    fake.set_plan("free")
    with pytest.raises(APIResponseError) as multi:
        notion.file_uploads.create(
            mode="multi_part", number_of_parts=2, filename="big.mp4", content_type="video/mp4"
        )
    assert "paid" in _refused(multi, 400, "validation_error")

    upload = notion.file_uploads.create(filename="clip.mp4", content_type="video/mp4")
    too_big = io.BytesIO(b"v" * (FREE_LIMIT + 1))
    with pytest.raises(APIResponseError) as single:
        notion.file_uploads.send(upload["id"], file=("clip.mp4", too_big, "video/mp4"))
    assert str(FREE_LIMIT) in _refused(single, 400, "validation_error")
    assert notion.file_uploads.retrieve(upload["id"])["status"] == "pending"

    at_limit = io.BytesIO(b"v" * FREE_LIMIT)
    sent = notion.file_uploads.send(upload["id"], file=("clip.mp4", at_limit, "video/mp4"))
    assert sent["status"] == "uploaded"


def test_urls_over_2000_characters_are_refused(
    notion: SyncNotion, workspace: SeededWorkspace
) -> None:
    """An external file URL or a text link over 2,000 characters: 400 validation_error."""
    long_url = "https://cdn.example/" + "a" * 1981
    assert len(long_url) == 2001
    task = workspace.tasks_data_source_id
    with pytest.raises(APIResponseError) as external:
        notion.pages.create(
            parent={"data_source_id": task},
            properties={"Title": {"title": [{"text": {"content": "t"}}]}},
            children=[{"type": "video", "video": {"external": {"url": long_url}}}],
        )
    message = _refused(external, 400, "validation_error")
    assert message.startswith("body failed validation: ")
    assert "should be ≤ `2000`, instead was `2001`" in message

    link = {"content": "watch", "link": {"url": long_url}}
    with pytest.raises(APIResponseError) as linked:
        notion.pages.create(
            parent={"data_source_id": task}, properties={"Title": {"title": [{"text": link}]}}
        )
    assert "text.link.url.length should be ≤ `2000`" in _refused(linked, 400, "validation_error")

    fits = {"content": "watch", "link": {"url": long_url[:2000]}}
    assert notion.pages.create(
        parent={"data_source_id": task}, properties={"Title": {"title": [{"text": fits}]}}
    )["id"]


def test_a_payload_over_500_kb_is_refused_with_413(
    notion: SyncNotion, workspace: SeededWorkspace
) -> None:
    """A JSON body over 500 KB is refused as too large, though every part of it is valid."""

    def paragraphs(texts_each: int) -> list[dict[str, Any]]:
        texts = [{"text": {"content": "x" * 2000}}] * texts_each
        return [{"type": "paragraph", "paragraph": {"rich_text": texts}} for _ in range(100)]

    page = notion.pages.create(
        parent={"data_source_id": workspace.tasks_data_source_id},
        properties={"Title": {"title": [{"text": {"content": "t"}}]}},
    )
    notion.blocks.children.append(page["id"], children=paragraphs(2))
    with pytest.raises(HTTPResponseError) as too_large:
        notion.blocks.children.append(page["id"], children=paragraphs(3))
    assert too_large.value.status == 413
    assert len(notion.blocks.children.list(page["id"])["results"]) == 100


def test_file_names_over_900_bytes_are_refused(notion: SyncNotion) -> None:
    """A file upload's name may be at most 900 bytes, counted in UTF-8."""
    with pytest.raises(APIResponseError) as refused:
        notion.file_uploads.create(filename="é" * 449 + "x.mp4", content_type="video/mp4")
    assert "900" in _refused(refused, 400, "validation_error")
    assert notion.file_uploads.create(filename="é" * 447 + "x.mp4", content_type="video/mp4")


def test_a_missing_capability_is_restricted_resource(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """Without insert content, creating a page is 403 restricted_resource; reading still works."""
    fake.set_capabilities({"read_content", "update_content"})
    with pytest.raises(APIResponseError) as refused:
        notion.pages.create(
            parent={"data_source_id": workspace.tasks_data_source_id},
            properties={"Title": {"title": [{"text": {"content": "t"}}]}},
        )
    _refused(refused, 403, "restricted_resource")
    assert notion.data_sources.retrieve(workspace.tasks_data_source_id)["object"] == "data_source"
    fake.set_capabilities({"update_content", "insert_content"})
    with pytest.raises(APIResponseError) as unreadable:
        notion.data_sources.retrieve(workspace.tasks_data_source_id)
    _refused(unreadable, 403, "restricted_resource")


def test_overload_and_rate_limit_answers_carry_retry_after(
    notion: SyncNotion, fake: FakeNotion
) -> None:
    """529 service_overload and 429 rate_limited come with Retry-After and change nothing."""
    fake.fail_next("GET", r"/v1/users/me$", "529", retry_after_s=7)
    with pytest.raises(HTTPResponseError) as overloaded:
        notion.users.me()
    assert overloaded.value.status == 529
    assert overloaded.value.headers["retry-after"] == "7"
    assert json.loads(overloaded.value.body)["code"] == "service_overload"

    fake.fail_next("POST", r"^/v1/file_uploads$", "429", retry_after_s=3, after_apply=True)
    with pytest.raises(APIResponseError) as limited:
        notion.file_uploads.create(filename="clip.mp4", content_type="video/mp4")
    _refused(limited, 429, "rate_limited")
    assert limited.value.headers["retry-after"] == "3"
    assert fake.counts()["POST /v1/file_uploads"] == 1
    assert notion.users.me()["type"] == "bot"


def test_the_reverse_relation_name_is_notions_choice(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """The name asked for the reverse relation is kept, unless Notion picks another."""
    fake.reverse_relation_name = "Related Videos"
    created = notion.databases.create(
        parent={"type": "page_id", "page_id": workspace.parent_page_id},
        title=[{"text": {"content": "Videos"}}],
        initial_data_source={
            "properties": {
                "Name": {"title": {}},
                "Task": {
                    "relation": {
                        "data_source_id": workspace.tasks_data_source_id,
                        "type": "dual_property",
                        "dual_property": {"synced_property_name": "Videos"},
                    }
                },
            }
        },
    )
    videos_source = created["data_sources"][0]["id"]
    task = notion.data_sources.retrieve(videos_source)["properties"]["Task"]["relation"]
    assert task["dual_property"]["synced_property_name"] == "Related Videos"
    tasks = notion.data_sources.retrieve(workspace.tasks_data_source_id)["properties"]
    assert "Videos" not in tasks
    assert tasks["Related Videos"]["relation"]["data_source_id"] == videos_source


def test_webhook_events_are_aggregated_the_documented_way(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """First property edit: an event at once; the next edits of the minute: one later event."""
    page = notion.pages.create(
        parent={"data_source_id": workspace.tasks_data_source_id},
        properties={"Title": {"title": [{"text": {"content": "Video 1"}}]}},
    )
    ana = fake.add_person("Ana")
    with webhook_subscriber() as subscriber:
        fake.subscribe_webhook(subscriber.url, "secret-token")
        fake.edit_page_as_person(page["id"], {"Status": {"status": {"name": "Video Error"}}}, ana)
        (first,) = subscriber.wait_for(1)
        notion.pages.update(page["id"], properties={"Error Log": {"rich_text": []}})
        fake.edit_page_as_person(
            page["id"], {"Error Log": {"rich_text": [{"text": {"content": "clips 5-8"}}]}}, ana
        )
        fake.advance_clock(30)
        assert len(subscriber.received) == 1
        fake.advance_clock(30)
        _, second = subscriber.received
        fake.advance_clock(60)
        assert len(subscriber.received) == 2

    assert first.event["type"] == second.event["type"] == "page.properties_updated"
    assert first.event["entity"] == {"id": page["id"], "type": "page"}
    assert first.event["authors"] == [{"id": ana, "type": "person"}]
    assert {author["type"] for author in second.event["authors"]} == {"bot", "person"}
    schema = notion.data_sources.retrieve(workspace.tasks_data_source_id)["properties"]
    assert first.event["data"]["updated_properties"] == [schema["Status"]["id"]]
    assert second.event["data"]["updated_properties"] == [schema["Error Log"]["id"]]
    for delivery in (first, second):
        expected = hmac.new(b"secret-token", delivery.body, hashlib.sha256).hexdigest()
        assert delivery.signature == f"sha256={expected}"
    assert first.event["id"] != second.event["id"]
