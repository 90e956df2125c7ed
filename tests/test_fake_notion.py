"""The local Notion, driven through the official notion-client and raw httpx."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, Client
from notion_client.errors import RequestTimeoutError

from tests.fakes.notion_server import (
    MB,
    TASK_STATUSES,
    FakeNotion,
    SeededWorkspace,
)
from tests.notion_workspace import SyncNotion


@pytest.fixture
def notion(fake: FakeNotion) -> Iterator[SyncNotion]:
    """The official client pointed at the fake."""
    with Client(auth=fake.token, base_url=fake.base_url, timeout_ms=1_000) as client:
        yield SyncNotion(client)


def raw(fake: FakeNotion, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {fake.token}", "Notion-Version": "2025-09-03"}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, f"{fake.base_url}{path}", headers=headers, timeout=10, **kwargs)


def title(text: str) -> dict[str, Any]:
    return {"title": [{"type": "text", "text": {"content": text}}]}


def text(content: str) -> dict[str, Any]:
    return {"rich_text": [{"type": "text", "text": {"content": content}}]}


def make_videos(notion: SyncNotion, workspace: SeededWorkspace) -> str:
    """A Videos database related two-way to Tasks; returns its data source id."""
    database = notion.databases.create(
        parent={"type": "page_id", "page_id": workspace.parent_page_id},
        title=[{"type": "text", "text": {"content": "Videos"}}],
        initial_data_source={
            "properties": {
                "Name": {"title": {}},
                "Clip Number": {"number": {}},
                "File": {"files": {}},
                "Status": {"select": {"options": [{"name": "pending"}, {"name": "generated"}]}},
                "Approved": {"checkbox": {}},
            }
        },
    )
    source_id: str = database["data_sources"][0]["id"]
    notion.data_sources.update(
        source_id,
        properties={
            "Task": {
                "relation": {
                    "data_source_id": workspace.tasks_data_source_id,
                    "type": "dual_property",
                    "dual_property": {"synced_property_name": "Videos"},
                }
            }
        },
    )
    return source_id


def upload_single(notion: SyncNotion, content: bytes, filename: str = "clip.mp4") -> str:
    upload = notion.file_uploads.create(filename=filename, content_type="video/mp4")
    notion.file_uploads.send(upload["id"], file=(filename, io.BytesIO(content), "video/mp4"))
    return str(upload["id"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status, body
    assert body["object"] == "error"
    assert body["status"] == status
    assert body["code"] == code
    assert body["message"]
    assert body["request_id"]
    return body


def test_seeded_tasks_schema_round_trips(notion: SyncNotion, workspace: SeededWorkspace) -> None:
    """The seeded Tasks database exposes its data source with typed, id'd properties."""
    database = notion.databases.retrieve(workspace.tasks_database_id)
    assert database["object"] == "database"
    assert database["data_sources"] == [{"id": workspace.tasks_data_source_id, "name": "Tasks"}]
    source = notion.data_sources.retrieve(workspace.tasks_data_source_id)
    assert source["object"] == "data_source"
    assert source["parent"] == {"type": "database_id", "database_id": database["id"]}
    types = {name: spec["type"] for name, spec in source["properties"].items()}
    assert types == {
        "Title": "title",
        "Status": "status",
        "Error Log": "rich_text",
        "Review Started": "date",
        "Review Completed": "date",
        "Project ID": "rich_text",
        "Channel": "select",
    }
    statuses = [option["name"] for option in source["properties"]["Status"]["status"]["options"]]
    assert statuses == list(TASK_STATUSES)
    assert all(spec["id"] for spec in source["properties"].values())


def test_schema_add_rename_remove_and_dual_relation(
    notion: SyncNotion, workspace: SeededWorkspace
) -> None:
    """Schema changes apply, and a dual relation adds the synced property on the other side."""
    videos_id = make_videos(notion, workspace)
    notion.data_sources.update(
        videos_id,
        properties={"Notes": {"rich_text": {}}, "Approved": {"name": "OK"}, "Clip Number": None},
    )
    videos = notion.data_sources.retrieve(videos_id)["properties"]
    assert {"Notes", "OK", "Task"} <= videos.keys()
    assert "Clip Number" not in videos
    assert videos["OK"]["type"] == "checkbox"
    tasks = notion.data_sources.retrieve(workspace.tasks_data_source_id)["properties"]
    synced = tasks["Videos"]["relation"]
    assert synced["data_source_id"] == videos_id
    assert synced["dual_property"]["synced_property_name"] == "Task"
    assert (
        videos["Task"]["relation"]["dual_property"]["synced_property_id"] == tasks["Videos"]["id"]
    )


def test_pages_create_query_filters_sorts_and_pagination(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """Over 100 rows: filters (and/or, equality, contains), sorts, and cursor pagination."""
    source_id = workspace.tasks_data_source_id
    for number in range(130):
        notion.pages.create(
            parent={"type": "data_source_id", "data_source_id": source_id},
            properties={
                "Title": title(f"Project {number:03d}"),
                "Status": {"status": {"name": "Video Ready" if number % 2 else "Queued"}},
                "Project ID": text(f"p-{number}"),
                "Channel": {"select": {"name": "odd" if number % 2 else "even"}},
            },
        )
    first = notion.data_sources.query(source_id)
    assert len(first["results"]) == 100
    assert first["has_more"] is True
    rest = notion.data_sources.query(source_id, start_cursor=first["next_cursor"])
    assert len(rest["results"]) == 30
    assert rest["has_more"] is False
    assert rest["next_cursor"] is None
    seen = {page["id"] for page in first["results"] + rest["results"]}
    assert len(seen) == 130

    ready = notion.data_sources.query(
        source_id,
        filter={
            "and": [
                {"property": "Status", "status": {"equals": "Video Ready"}},
                {
                    "or": [
                        {"property": "Title", "title": {"contains": "Project 00"}},
                        {"property": "Project ID", "rich_text": {"equals": "p-99"}},
                    ]
                },
            ]
        },
        sorts=[{"property": "Title", "direction": "descending"}],
        page_size=3,
    )
    names = [page["properties"]["Title"]["title"][0]["plain_text"] for page in ready["results"]]
    assert names == ["Project 099", "Project 009", "Project 007"]
    assert ready["has_more"] is True
    evens = notion.data_sources.query(
        source_id, filter={"property": "Channel", "select": {"equals": "even"}}, page_size=100
    )
    assert len(evens["results"]) == 65
    assert fake.counts()["POST /v1/pages"] == 130


def test_number_checkbox_relation_filters_and_two_way_sync(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """Setting a dual relation updates the related page; number/checkbox/relation filters."""
    videos_id = make_videos(notion, workspace)
    task = notion.pages.create(
        parent={"data_source_id": workspace.tasks_data_source_id},
        properties={"Title": title("Task")},
    )
    rows = [
        notion.pages.create(
            parent={"data_source_id": videos_id},
            properties={
                "Name": title(f"Clip {number}"),
                "Clip Number": {"number": number},
                "Approved": {"checkbox": number == 2},
                "Task": {"relation": [{"id": task["id"]}]} if number < 3 else {"relation": []},
            },
        )
        for number in (1, 2, 3)
    ]
    task_links = fake.simple_properties(task["id"])["Videos"]
    assert task_links == [rows[0]["id"], rows[1]["id"]]
    linked = notion.data_sources.query(
        videos_id,
        filter={
            "and": [
                {"property": "Task", "relation": {"contains": task["id"]}},
                {"property": "Approved", "checkbox": {"equals": False}},
            ]
        },
    )
    assert [page["id"] for page in linked["results"]] == [rows[0]["id"]]
    third = notion.data_sources.query(
        videos_id, filter={"property": "Clip Number", "number": {"equals": 3}}
    )
    assert [page["id"] for page in third["results"]] == [rows[2]["id"]]
    notion.pages.update(rows[0]["id"], properties={"Task": {"relation": []}})
    assert fake.simple_properties(task["id"])["Videos"] == [rows[1]["id"]]
    notion.pages.update(rows[1]["id"], in_trash=True)
    remaining = notion.data_sources.query(videos_id)["results"]
    assert [page["id"] for page in remaining] == [rows[0]["id"], rows[2]["id"]]


def test_last_edited_time_rounds_to_minute_and_timestamp_filter(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """last_edited_time is floored to the minute; a person's edit sets last_edited_by."""
    page = notion.pages.create(
        parent={"data_source_id": workspace.tasks_data_source_id},
        properties={"Title": title("Task")},
    )
    floor_now = datetime.now(UTC).replace(second=0, microsecond=0)
    stamp = datetime.fromisoformat(page["last_edited_time"].replace("Z", "+00:00"))
    assert page["last_edited_time"].endswith(":00.000Z")
    assert (floor_now - stamp).total_seconds() in (0, 60)
    assert page["last_edited_by"]["id"] == notion.users.me()["id"]

    fake.advance_clock(120)
    person = fake.add_person("Rita Reviewer")
    edited = fake.edit_page_as_person(
        page["id"], {"Status": {"status": {"name": "Video Approved"}}}, person
    )
    assert edited["last_edited_by"] == {"object": "user", "id": person}
    assert edited["last_edited_time"] > page["last_edited_time"]
    after = notion.data_sources.query(
        workspace.tasks_data_source_id,
        filter={
            "timestamp": "last_edited_time",
            "last_edited_time": {"after": page["last_edited_time"]},
        },
        sorts=[{"timestamp": "last_edited_time", "direction": "descending"}],
    )
    assert [row["id"] for row in after["results"]] == [page["id"]]
    before = notion.data_sources.query(
        workspace.tasks_data_source_id,
        filter={
            "timestamp": "last_edited_time",
            "last_edited_time": {"before": page["last_edited_time"]},
        },
    )
    assert before["results"] == []


def test_single_part_upload_attached_to_files_and_video_block(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """A single-part upload attaches to a files property and a video block; bytes read back."""
    videos_id = make_videos(notion, workspace)
    content = bytes(range(256)) * 4_000 + b"\r\n--tail\r\n"
    upload_id = upload_single(notion, content)
    assert notion.file_uploads.retrieve(upload_id)["status"] == "uploaded"
    page = notion.pages.create(
        parent={"data_source_id": videos_id},
        properties={
            "Name": title("Clip 1"),
            "File": {
                "files": [
                    {"type": "file_upload", "file_upload": {"id": upload_id}, "name": "clip.mp4"},
                    {"type": "external", "external": {"url": "https://cdn.example/c.mp4"}},
                ]
            },
        },
        children=[
            {"type": "heading_2", "heading_2": text("Clip 1")},
            {"type": "video", "video": {"type": "file_upload", "file_upload": {"id": upload_id}}},
        ],
    )
    files = notion.pages.retrieve(page["id"])["properties"]["File"]["files"]
    assert files[0]["type"] == "file"
    assert files[0]["name"] == "clip.mp4"
    assert httpx.get(files[0]["file"]["url"]).content == content
    assert files[1] == {
        "name": "https://cdn.example/c.mp4",
        "type": "external",
        "external": {"url": "https://cdn.example/c.mp4"},
    }
    blocks = notion.blocks.children.list(page["id"])["results"]
    assert [block["type"] for block in blocks] == ["heading_2", "video"]
    assert httpx.get(blocks[1]["video"]["file"]["url"]).content == content
    assert fake.uploaded_bytes(upload_id) == content
    assert notion.file_uploads.retrieve(upload_id)["expiry_time"] is None


def test_multi_part_upload_and_block_append(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """Multi-part: 5 MB parts then a small last one, complete, attach; children paginate."""
    parts = [b"a" * (5 * MB), b"b" * (5 * MB), b"tail"]
    upload = notion.file_uploads.create(
        mode="multi_part", number_of_parts=3, filename="big.mp4", content_type="video/mp4"
    )
    for number, part in enumerate(parts, start=1):
        sent = notion.file_uploads.send(
            upload["id"], file=("big.mp4", io.BytesIO(part), "video/mp4"), part_number=str(number)
        )
        assert sent["status"] == "pending"
    completed = notion.file_uploads.complete(upload["id"])
    assert completed["status"] == "uploaded"
    assert completed["content_length"] == sum(len(part) for part in parts)
    assert fake.uploaded_bytes(upload["id"]) == b"".join(parts)

    page = notion.pages.create(
        parent={"data_source_id": workspace.tasks_data_source_id},
        properties={"Title": title("Task")},
    )
    notion.blocks.children.append(
        page["id"],
        children=[
            {"type": "video", "video": {"type": "file_upload", "file_upload": {"id": upload["id"]}}}
        ],
    )
    notion.blocks.children.append(
        page["id"], children=[{"type": "paragraph", "paragraph": text(f"{n}")} for n in range(100)]
    )
    first = notion.blocks.children.list(page["id"], page_size=60)
    rest = notion.blocks.children.list(page["id"], start_cursor=first["next_cursor"])
    assert len(first["results"]) + len(rest["results"]) == 101
    video_url = first["results"][0]["video"]["file"]["url"]
    assert fake.upload_id_of_file_url(video_url) == upload["id"]


def test_validation_errors(fake: FakeNotion, workspace: SeededWorkspace) -> None:
    """Unknown property, wrong type key, long text, long arrays, bad uploads: 400s."""
    parent = {"data_source_id": workspace.tasks_data_source_id}

    def create(properties: dict[str, Any]) -> httpx.Response:
        return raw(fake, "POST", "/v1/pages", json={"parent": parent, "properties": properties})

    unknown = assert_error(create({"Nope": text("x")}), 400, "validation_error")
    assert unknown["message"] == "Nope is not a property that exists."
    assert_error(create({"Review Started": text("x")}), 400, "validation_error")
    assert_error(create({"Error Log": text("x" * 2001)}), 400, "validation_error")
    hundred_and_one = {"rich_text": [{"text": {"content": "x"}}] * 101}
    assert_error(create({"Error Log": hundred_and_one}), 400, "validation_error")
    assert_error(create({"Status": {"status": {"name": "Nope"}}}), 400, "validation_error")
    assert create({"Error Log": text("x" * 2000)}).status_code == 200

    pending = raw(fake, "POST", "/v1/file_uploads", json={"filename": "a.mp4"}).json()
    videos_like = {"files": [{"type": "file_upload", "file_upload": {"id": pending["id"]}}]}
    raw(
        fake,
        "PATCH",
        f"/v1/data_sources/{workspace.tasks_data_source_id}",
        json={"properties": {"File": {"files": {}}}},
    )
    assert_error(create({"File": videos_like}), 400, "validation_error")

    wrong_type = raw(
        fake,
        "POST",
        f"/v1/file_uploads/{pending['id']}/send",
        files={"file": ("a.mp4", b"data", "image/png")},
    )
    assert_error(wrong_type, 400, "validation_error")
    too_big = raw(
        fake,
        "POST",
        f"/v1/file_uploads/{pending['id']}/send",
        files={"file": ("a.mp4", b"x" * (20 * MB + 1), "video/mp4")},
    )
    assert_error(too_big, 400, "validation_error")
    small_part = raw(
        fake,
        "POST",
        "/v1/file_uploads",
        json={"mode": "multi_part", "number_of_parts": 2, "filename": "b.mp4"},
    ).json()
    short = raw(
        fake,
        "POST",
        f"/v1/file_uploads/{small_part['id']}/send",
        files={"file": ("b.mp4", b"short", "video/mp4")},
        data={"part_number": "1"},
    )
    assert_error(short, 400, "validation_error")
    incomplete = raw(fake, "POST", f"/v1/file_uploads/{small_part['id']}/complete")
    assert_error(incomplete, 400, "validation_error")

    sent = raw(
        fake,
        "POST",
        f"/v1/file_uploads/{pending['id']}/send",
        files={"file": ("a.mp4", b"data", "video/mp4")},
    )
    assert sent.json()["status"] == "uploaded"
    fake.expire_upload(pending["id"])
    assert_error(create({"File": videos_like}), 400, "validation_error")


def test_auth_version_sharing_and_not_found(fake: FakeNotion, workspace: SeededWorkspace) -> None:
    """401 for a bad token, missing_version without the header, 404 when not shared."""
    path = f"/v1/databases/{workspace.tasks_database_id}"
    assert_error(
        raw(fake, "GET", path, headers={"Authorization": "Bearer nope"}), 401, "unauthorized"
    )
    assert_error(
        httpx.get(f"{fake.base_url}{path}", headers={"Authorization": f"Bearer {fake.token}"}),
        400,
        "missing_version",
    )
    assert raw(fake, "GET", path).status_code == 200
    fake.unshare(workspace.parent_page_id)
    hidden = assert_error(raw(fake, "GET", path), 404, "object_not_found")
    assert hidden["message"] == (
        f"Could not find database with ID: {workspace.tasks_database_id}. "
        "Make sure the relevant pages and databases are shared with your integration."
    )
    assert_error(
        raw(fake, "POST", f"/v1/data_sources/{workspace.tasks_data_source_id}/query", json={}),
        404,
        "object_not_found",
    )
    fake.share(workspace.tasks_database_id)
    assert raw(fake, "GET", path).status_code == 200
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(raw(fake, "GET", f"/v1/pages/{missing}"), 404, "object_not_found")


def test_users(notion: SyncNotion, fake: FakeNotion) -> None:
    """users.me is the bot; people added by tests are listed and retrievable."""
    me = notion.users.me()
    assert me["type"] == "bot"
    assert me["id"] == fake.bot_user_id()
    person = fake.add_person("Rita Reviewer")
    listed = {user["id"] for user in notion.users.list()["results"]}
    assert listed == {me["id"], person}
    assert notion.users.retrieve(person)["type"] == "person"


def test_rate_limit_answers_429_and_client_retries(fake: FakeNotion) -> None:
    """Past the bucket the fake answers 429 with Retry-After; notion-client waits and retries."""
    fake.set_rate_limit(0.5, burst=2)
    statuses = [raw(fake, "GET", "/v1/users/me").status_code for _ in range(2)]
    assert statuses == [200, 200]
    limited = raw(fake, "GET", "/v1/users/me")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) == 2

    fake.set_rate_limit(None)
    fake.fail_next("GET", r"/v1/users/me$", "429")
    with Client(auth=fake.token, base_url=fake.base_url) as client:
        started = time.monotonic()
        assert SyncNotion(client).users.me()["type"] == "bot"
    assert time.monotonic() - started >= 1
    assert [record.status for record in fake.requests[-2:]] == [429, 200]


def test_fault_before_and_after_apply(
    notion: SyncNotion, fake: FakeNotion, workspace: SeededWorkspace
) -> None:
    """A write failing before apply changes nothing; after apply the change is there."""
    parent = {"data_source_id": workspace.tasks_data_source_id}
    fake.fail_next("POST", r"^/v1/pages$", "500")
    with pytest.raises(APIResponseError) as before:
        notion.pages.create(parent=parent, properties={"Title": title("before")})
    assert before.value.status == 500
    assert fake.pages_in(workspace.tasks_data_source_id) == []

    fake.fail_next("POST", r"^/v1/pages$", "409", after_apply=True)
    with pytest.raises(APIResponseError) as after:
        notion.pages.create(parent=parent, properties={"Title": title("after")})
    assert after.value.code == "conflict_error"
    assert len(fake.pages_in(workspace.tasks_data_source_id)) == 1

    fake.fault_delay_s = 0.5
    fake.fail_next("POST", r"^/v1/pages$", "timeout", after_apply=True)
    with (
        Client(auth=fake.token, base_url=fake.base_url, timeout_ms=200) as impatient,
        pytest.raises(RequestTimeoutError),
    ):
        SyncNotion(impatient).pages.create(parent=parent, properties={"Title": title("slow")})
    assert len(fake.pages_in(workspace.tasks_data_source_id)) == 2


def test_injected_faults_hit_the_given_rate(fake: FakeNotion) -> None:
    """inject_faults fails about the given fraction of requests, with the given kinds."""
    fake.inject_faults(0.3, kinds=("409", "503"), seed=7)
    headers = {"Authorization": f"Bearer {fake.token}", "Notion-Version": "2025-09-03"}
    with httpx.Client(base_url=fake.base_url, headers=headers) as client:
        statuses = [client.get("/v1/users/me").status_code for _ in range(100)]
    fake.inject_faults(0)
    failures = [status for status in statuses if status != 200]
    assert 15 <= len(failures) <= 45
    assert set(failures) == {409, 503}
    assert raw(fake, "GET", "/v1/users/me").status_code == 200
