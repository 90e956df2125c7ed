"""A local Notion API (version 2025-09-03) on 127.0.0.1, for tests and benchmarks.

It speaks Notion's HTTP API over a real socket, so `notion_client.Client(base_url=...)`
cannot tell it from api.notion.com: bearer auth, the required `Notion-Version` header,
databases that hold data sources, data source schema and query (filters, sorts,
cursors), pages with two-way relations, block children (text blocks and video/file
blocks), the File Upload API (single and multi part) with the bytes served back, users,
and Notion's error shape `{"object": "error", "status", "code", "message", "request_id"}`.

Timestamps are rounded down to the minute as Notion does. A token bucket can rate limit
every request (429 with Retry-After), and faults (429, 529 service_overload with
Retry-After, 409, 500, 503, timeouts) can be injected at a rate or per request; a faulty
write either fails before it changes anything or after the change was applied, chosen per
request, because both happen in real life. Tests read state directly through the helpers
at the end of `FakeNotion`.

Documented limits are refused the documented way: any URL over 2,000 characters and a
file name over 900 bytes (400 validation_error), a JSON body over 500 KB (413), a
request the integration's capabilities do not allow (403 restricted_resource), and a file
over the workspace's upload limit, which `users/me` reports as
`bot.workspace_limits.max_file_upload_size_in_bytes` (5 MiB on a free plan, where
multi-part uploads are refused too; 5 GiB on a paid plan). A webhook subscriber gets
`page.properties_updated` events as Notion aggregates them: the first edit of a page is
sent at once, and the edits of the following minute go out together in one later event
(at the end of that minute on the server's clock, which `advance_clock` moves).
The name of the reverse side of a two-way relation can be forced, because Notion does
not document that it keeps the `synced_property_name` asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import mimetypes
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

Json = dict[str, Any]
FaultKind = Literal["429", "529", "409", "500", "503", "timeout"]
ALL_FAULT_KINDS: tuple[FaultKind, ...] = ("429", "529", "409", "500", "503", "timeout")
Plan = Literal["free", "paid"]
Capability = Literal["read_content", "update_content", "insert_content"]
ALL_CAPABILITIES: frozenset[Capability] = frozenset(
    ("read_content", "update_content", "insert_content")
)

DEFAULT_TOKEN = "ntn_fake_integration_token"  # noqa: S105 (a fake token for a fake server)
MB = 1024 * 1024
SINGLE_PART_MAX_BYTES = 20 * MB
MULTI_PART_MIN_BYTES = 5 * MB
MULTI_PART_MAX_BYTES = 20 * MB
MAX_PARTS = 1000
TEXT_CONTENT_MAX = 2000
ARRAY_MAX = 100
PAGE_SIZE_MAX = 100
URL_MAX = 2000
FILE_NAME_MAX_BYTES = 900
JSON_BODY_MAX_BYTES = 500_000
UPLOAD_LIMITS: dict[Plan, int] = {"free": 5 * MB, "paid": 5 * 1024 * MB}
WEBHOOK_AGGREGATION_S = 60.0
UPLOAD_LIFETIME = timedelta(hours=1)
FILE_URL_LIFETIME = timedelta(hours=1)
FILES_PATH = "/files/"

PROPERTY_TYPES = (
    "title",
    "rich_text",
    "number",
    "select",
    "status",
    "date",
    "files",
    "relation",
    "url",
    "checkbox",
    "people",
    "last_edited_time",
)
TEXT_BLOCK_TYPES = (
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "to_do",
    "toggle",
    "callout",
)
FILE_BLOCK_TYPES = ("video", "file", "image", "audio", "pdf")
TASK_STATUSES = (
    "Queued",
    "Generating Video",
    "Video Ready",
    "Videos Ready",
    "Video Approved",
    "Video Error",
    "Generating Audio",
    "Audio Ready",
)


class NotionError(Exception):
    """An answer in Notion's error shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def validation_error(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def not_found(kind: str, object_id: str) -> NotionError:
    return NotionError(
        404,
        "object_not_found",
        f"Could not find {kind} with ID: {object_id}. "
        "Make sure the relevant pages and databases are shared with your integration.",
    )


def fault_error(kind: FaultKind, retry_after_s: int) -> NotionError:
    if kind == "429":
        return NotionError(
            429,
            "rate_limited",
            "You have been rate limited. Please try again in a few minutes.",
            {"Retry-After": str(retry_after_s)},
        )
    if kind == "529":
        return NotionError(
            529,
            "service_overload",
            "Notion is experiencing high load. Please try again later.",
            {"Retry-After": str(retry_after_s)},
        )
    if kind == "409":
        return NotionError(
            409, "conflict_error", "Conflict occurred while saving. Please try again."
        )
    if kind == "500":
        return NotionError(500, "internal_server_error", "Unexpected error occurred.")
    if kind == "503":
        return NotionError(
            503, "service_unavailable", "Notion is unavailable, please try again later."
        )
    return NotionError(504, "gateway_timeout", "Gateway timed out.")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def parse_moment(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise validation_error(f"body failed validation: {where} should be an ISO 8601 date.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise validation_error(
            f"body failed validation: {where} should be an ISO 8601 date, instead was `{value}`."
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def normalize_id(raw: str, name: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError as error:
        raise validation_error(
            f"path failed validation: path.{name} should be a valid uuid, instead was `{raw}`."
        ) from error


def body_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise validation_error(f"body failed validation: {where} should be a string.")
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise validation_error(
            f"body failed validation: {where} should be a valid uuid, instead was `{value}`."
        ) from error


def check_url(url: str, where: str) -> str:
    """Notion refuses any URL longer than 2,000 characters."""
    if len(url) > URL_MAX:
        raise validation_error(
            f"body failed validation: {where}.length should be ≤ `{URL_MAX}`, "
            f"instead was `{len(url)}`."
        )
    return url


def rich_text_item(content: str, link: str | None = None) -> Json:
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": link} if link else None},
        "annotations": {
            "bold": False,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "code": False,
            "color": "default",
        },
        "plain_text": content,
        "href": link,
    }


def parse_rich_text(value: Any, where: str) -> list[Json]:
    """Validates a rich text array the way Notion does and returns its read shape."""
    if not isinstance(value, list):
        raise validation_error(f"body failed validation: {where} should be an array.")
    if len(value) > ARRAY_MAX:
        raise validation_error(
            f"body failed validation: {where}.length should be ≤ `{ARRAY_MAX}`, "
            f"instead was `{len(value)}`."
        )
    items = []
    for index, item in enumerate(value):
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            raise validation_error(
                f"body failed validation: {where}[{index}].text.content should be defined."
            )
        content: str = text["content"]
        if len(content) > TEXT_CONTENT_MAX:
            raise validation_error(
                f"body failed validation: {where}[{index}].text.content.length should be "
                f"≤ `{TEXT_CONTENT_MAX}`, instead was `{len(content)}`."
            )
        link = text.get("link")
        url = link.get("url") if isinstance(link, dict) else None
        if isinstance(url, str):
            check_url(url, f"{where}[{index}].text.link.url")
        rendered = rich_text_item(content, url if isinstance(url, str) else None)
        if isinstance(item.get("annotations"), dict):
            rendered["annotations"].update(item["annotations"])
        items.append(rendered)
    return items


def plain_text(items: list[Json]) -> str:
    return "".join(str(item.get("plain_text", "")) for item in items)


@dataclass
class Upload:
    id: str
    mode: str
    filename: str
    content_type: str
    created_time: datetime
    expiry_time: datetime
    created_by: str
    number_of_parts: int
    status: str = "pending"
    attached: bool = False
    parts: dict[int, bytes] = field(default_factory=dict)
    content: bytes = b""


@dataclass
class Page:
    id: str
    parent: Json
    properties: dict[str, Any]
    created_time: datetime
    created_by: str
    last_edited_time: datetime
    last_edited_by: str
    in_trash: bool = False
    children: list[str] = field(default_factory=list)


@dataclass
class Block:
    id: str
    parent: Json
    type: str
    content: Json
    created_time: datetime
    created_by: str
    in_trash: bool = False
    children: list[str] = field(default_factory=list)


@dataclass
class DataSource:
    id: str
    database_id: str
    name: str
    properties: dict[str, Json]
    created_time: datetime
    last_edited_time: datetime
    page_ids: list[str] = field(default_factory=list)


@dataclass
class Database:
    id: str
    parent_page_id: str
    title: list[Json]
    description: list[Json]
    is_inline: bool
    created_time: datetime
    last_edited_time: datetime
    data_source_ids: list[str] = field(default_factory=list)
    in_trash: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One answered request, for tests and benchmarks."""

    method: str
    path: str
    endpoint: str
    status: int
    started_at: float
    duration_s: float


@dataclass(frozen=True)
class SeededWorkspace:
    """What `seed_workspace` made: a shared parent page and the Tasks database."""

    parent_page_id: str
    tasks_database_id: str
    tasks_data_source_id: str


@dataclass
class RequestFault:
    """A fault for the next `remaining` matching requests (None: every one from now on)."""

    method: str
    path_pattern: re.Pattern[str]
    kind: FaultKind
    after_apply: bool
    retry_after_s: int
    remaining: int | None


@dataclass(frozen=True)
class PickedFault:
    kind: FaultKind
    after_apply: bool
    retry_after_s: int


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook request the fake sent, and the subscriber's answer."""

    event: Json
    status: int


@dataclass
class _PageEvents:
    """Aggregation state of one page: when its window ends (server clock), what waits."""

    window_ends: datetime
    authors: dict[str, str] = field(default_factory=dict)
    properties: list[str] = field(default_factory=list)
    timer: threading.Timer | None = None


@dataclass
class WebhookSubscription:
    """Where page.properties_updated events go, signed with the verification token."""

    url: str
    verification_token: str
    aggregation_s: float
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    integration_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    pages: dict[str, _PageEvents] = field(default_factory=dict)


Handler = Callable[[str, list[str], Json, dict[str, list[str]], bytes, str], Json]


class FakeNotion:
    """A stateful fake of Notion's API; `start()` serves it on 127.0.0.1 in a thread."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        port: int = 0,
        rate_limit_per_s: float | None = None,
        rate_limit_burst: int = 3,
        fault_delay_s: float = 2.0,
        workspace_name: str = "Fake Workspace",
        plan: Plan = "paid",
    ) -> None:
        self.token = token
        self._port = port
        self._lock = threading.RLock()
        self._clock_offset = timedelta()
        self.workspace_name = workspace_name
        self.workspace_id = new_id()
        self.plan: Plan = plan
        self.reverse_relation_name: str | None = None
        self._capabilities: dict[str, frozenset[Capability]] = {}
        self._subscriptions: list[WebhookSubscription] = []
        self._users: dict[str, Json] = {}
        self._bots: dict[str, str] = {}
        self._shared: dict[str, set[str]] = {}
        self._pages: dict[str, Page] = {}
        self._blocks: dict[str, Block] = {}
        self._databases: dict[str, Database] = {}
        self._data_sources: dict[str, DataSource] = {}
        self._uploads: dict[str, Upload] = {}
        self.requests: list[RequestRecord] = []
        self._rate_per_s = rate_limit_per_s
        self._bucket_size = float(rate_limit_burst)
        self._bucket = float(rate_limit_burst)
        self._rate_clock: Callable[[], float] = time.monotonic
        self._bucket_at = self._rate_clock()
        self._fault_rate = 0.0
        self._fault_kinds: tuple[FaultKind, ...] = ALL_FAULT_KINDS
        self._fault_random = random.Random(0)
        self.fault_delay_s = fault_delay_s
        self._request_faults: list[RequestFault] = []
        self.add_token(token)
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._register_routes()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- serving -------------------------------------------------------------------

    def start(self) -> FakeNotion:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            for subscription in self._subscriptions:
                for page in subscription.pages.values():
                    if page.timer is not None:
                        page.timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Notion server is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ----- switches ------------------------------------------------------------------

    def add_token(self, token: str, bot_name: str = "clipgate") -> str:
        """Registers an integration token and returns its bot user id."""
        with self._lock:
            bot_id = new_id()
            self._users[bot_id] = {
                "object": "user",
                "id": bot_id,
                "name": bot_name,
                "avatar_url": None,
                "type": "bot",
                "bot": {
                    "owner": {"type": "workspace", "workspace": True},
                    "workspace_name": self.workspace_name,
                },
            }
            self._bots[token] = bot_id
            self._shared[token] = set()
            self._capabilities[token] = ALL_CAPABILITIES
            return bot_id

    def set_capabilities(self, capabilities: set[Capability], token: str | None = None) -> None:
        """What the integration may do; a request needing more is refused with 403."""
        with self._lock:
            self._capabilities[token or self.token] = frozenset(capabilities)

    def set_plan(self, plan: Plan) -> None:
        """The workspace's plan: it sets the upload limit and whether multi-part is allowed."""
        with self._lock:
            self.plan = plan

    @property
    def upload_limit_bytes(self) -> int:
        return UPLOAD_LIMITS[self.plan]

    def subscribe_webhook(
        self,
        url: str,
        verification_token: str,
        aggregation_s: float = WEBHOOK_AGGREGATION_S,
    ) -> WebhookSubscription:
        """Sends page.properties_updated events to `url`, aggregated as Notion does."""
        with self._lock:
            subscription = WebhookSubscription(url, verification_token, aggregation_s)
            self._subscriptions.append(subscription)
            return subscription

    def bot_user_id(self, token: str | None = None) -> str:
        return self._bots[token or self.token]

    def add_person(self, name: str, email: str | None = None) -> str:
        with self._lock:
            person_id = new_id()
            self._users[person_id] = {
                "object": "user",
                "id": person_id,
                "name": name,
                "avatar_url": None,
                "type": "person",
                "person": {"email": email or f"{name.lower().replace(' ', '.')}@example.com"},
            }
            return person_id

    def share(self, object_id: str, token: str | None = None) -> None:
        """Shares a page or database (and everything under it) with an integration."""
        with self._lock:
            self._shared[token or self.token].add(object_id)

    def unshare(self, object_id: str, token: str | None = None) -> None:
        with self._lock:
            self._shared[token or self.token].discard(object_id)

    def set_rate_limit(
        self,
        per_second: float | None,
        burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An average request rate per second (token bucket of `burst`), or None for none.

        The bucket fills as `clock` (seconds) goes on: a test can share its own clock
        with the client it paces.
        """
        with self._lock:
            self._rate_per_s = per_second
            self._rate_clock = clock
            self._bucket_size = float(burst)
            self._bucket = float(burst)
            self._bucket_at = clock()

    def inject_faults(
        self,
        rate: float,
        kinds: tuple[FaultKind, ...] = ALL_FAULT_KINDS,
        seed: int = 0,
        delay_s: float | None = None,
    ) -> None:
        """Makes `rate` of API requests fail with one of `kinds`; rate 0 turns it off.

        A "timeout" answers only after `delay_s` (longer than the client's timeout). A
        faulty write fails before or after its change is applied, chosen per request;
        a 429 always comes before, as Notion limits before doing any work.
        """
        with self._lock:
            self._fault_rate = rate
            self._fault_kinds = kinds
            self._fault_random = random.Random(seed)
            if delay_s is not None:
                self.fault_delay_s = delay_s

    def fail_next(
        self,
        method: str,
        path_regex: str,
        kind: FaultKind,
        *,
        after_apply: bool = False,
        retry_after_s: int = 1,
        times: int | None = 1,
    ) -> None:
        """Fails the next `times` requests whose method and path (`re.search`) match.

        `times=None` fails every matching request until `clear_faults()`.
        """
        with self._lock:
            self._request_faults.append(
                RequestFault(
                    method.upper(), re.compile(path_regex), kind, after_apply, retry_after_s, times
                )
            )

    def clear_faults(self) -> None:
        """Stops every injected fault, at a rate or set with `fail_next`."""
        with self._lock:
            self._request_faults.clear()
            self._fault_rate = 0.0

    def advance_clock(self, seconds: float) -> None:
        """Moves the server's clock (timestamps, upload and URL expiry, webhook windows).

        Webhook events whose aggregation window ends by the new time are sent before this
        returns.
        """
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)
            now = self._now()
            due = [
                (subscription, page_id)
                for subscription in self._subscriptions
                for page_id, state in subscription.pages.items()
                if state.timer is not None and state.window_ends <= now
            ]
        for subscription, page_id in due:
            self._deliver_aggregated(subscription, page_id)

    def expire_upload(self, upload_id: str) -> None:
        with self._lock:
            upload = self._uploads[upload_id]
            upload.expiry_time = self._now() - timedelta(seconds=1)

    # ----- state helpers for tests ---------------------------------------------------

    def counts(self) -> Counter[str]:
        """Requests per endpoint, e.g. `counts()["POST /v1/pages"]`."""
        with self._lock:
            return Counter(record.endpoint for record in self.requests)

    def create_parent_page(self, title: str = "clipgate", *, shared: bool = True) -> str:
        """A workspace-level page (which the API cannot create), shared with the token."""
        with self._lock:
            now = self._now()
            page = Page(
                id=new_id(),
                parent={"type": "workspace", "workspace": True},
                properties={"title": [rich_text_item(title)]},
                created_time=now,
                created_by=self.bot_user_id(),
                last_edited_time=now,
                last_edited_by=self.bot_user_id(),
            )
            self._pages[page.id] = page
            if shared:
                self.share(page.id)
            return page.id

    def seed_workspace(self, token: str | None = None) -> SeededWorkspace:
        """A shared parent page holding a Tasks database with the seed's schema."""
        with self._lock:
            parent_page_id = self.create_parent_page("clipgate")
            if token is not None:
                self.share(parent_page_id, token)
            database = self._create_database(
                {
                    "parent": {"type": "page_id", "page_id": parent_page_id},
                    "title": [{"text": {"content": "Tasks"}}],
                    "initial_data_source": {
                        "properties": {
                            "Title": {"title": {}},
                            "Status": {
                                "status": {"options": [{"name": name} for name in TASK_STATUSES]}
                            },
                            "Error Log": {"rich_text": {}},
                            "Review Started": {"date": {}},
                            "Review Completed": {"date": {}},
                            "Project ID": {"rich_text": {}},
                            "Channel": {"select": {"options": []}},
                        }
                    },
                },
                self.bot_user_id(),
            )
            return SeededWorkspace(parent_page_id, database.id, database.data_source_ids[0])

    def page(self, page_id: str) -> Json:
        """A page in API shape, regardless of sharing."""
        with self._lock:
            return self._render_page(self._pages[page_id])

    def pages_in(self, data_source_id: str, *, include_trashed: bool = False) -> list[Json]:
        with self._lock:
            return [
                self._render_page(self._pages[page_id])
                for page_id in self._data_sources[data_source_id].page_ids
                if include_trashed or not self._pages[page_id].in_trash
            ]

    def simple_properties(self, page_id: str) -> dict[str, Any]:
        """A page's properties as plain values: text as str, select/status as name,
        date as its start, relation as ids, files as names, people as ids."""
        with self._lock:
            rendered = self._render_page(self._pages[page_id])["properties"]
        simple: dict[str, Any] = {}
        for name, value in rendered.items():
            kind = value["type"]
            raw = value[kind]
            if kind in ("title", "rich_text"):
                simple[name] = plain_text(raw)
            elif kind in ("select", "status"):
                simple[name] = raw["name"] if raw else None
            elif kind == "date":
                simple[name] = raw["start"] if raw else None
            elif kind in ("relation", "people"):
                simple[name] = [item["id"] for item in raw]
            elif kind == "files":
                simple[name] = [item["name"] for item in raw]
            else:
                simple[name] = raw
        return simple

    def block_children(self, block_id: str) -> list[Json]:
        with self._lock:
            parent = self._pages.get(block_id) or self._blocks[block_id]
            return [self._render_block(self._blocks[child]) for child in parent.children]

    def upload(self, upload_id: str) -> Json:
        with self._lock:
            return self._render_upload(self._uploads[upload_id])

    def uploaded_bytes(self, upload_id: str) -> bytes:
        with self._lock:
            return self._uploads[upload_id].content

    def upload_id_of_file_url(self, url: str) -> str:
        """The upload a `file.url` read from a page or block points at."""
        return urlsplit(url).path.removeprefix(FILES_PATH).split("/")[0]

    def edit_page_as_person(self, page_id: str, properties: Json, user_id: str) -> Json:
        """Changes a page the way a human in the Notion UI does (they become its editor)."""
        with self._lock:
            page = self._pages[page_id]
            self._write_properties(page, properties, user_id, creating=False)
            return self._render_page(page)

    # ----- request handling ----------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def _register_routes(self) -> None:
        hex_id = r"([0-9a-fA-F-]{32,36})"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/v1/users/me", "GET /v1/users/me", self._get_me),
            ("GET", "/v1/users", "GET /v1/users", self._list_users),
            ("GET", f"/v1/users/{hex_id}", "GET /v1/users/{id}", self._get_user),
            ("POST", "/v1/databases", "POST /v1/databases", self._post_database),
            ("GET", f"/v1/databases/{hex_id}", "GET /v1/databases/{id}", self._get_database),
            (
                "PATCH",
                f"/v1/databases/{hex_id}",
                "PATCH /v1/databases/{id}",
                self._patch_database,
            ),
            (
                "GET",
                f"/v1/data_sources/{hex_id}",
                "GET /v1/data_sources/{id}",
                self._get_data_source,
            ),
            (
                "PATCH",
                f"/v1/data_sources/{hex_id}",
                "PATCH /v1/data_sources/{id}",
                self._patch_data_source,
            ),
            (
                "POST",
                f"/v1/data_sources/{hex_id}/query",
                "POST /v1/data_sources/{id}/query",
                self._query_data_source,
            ),
            ("POST", "/v1/pages", "POST /v1/pages", self._post_page),
            ("GET", f"/v1/pages/{hex_id}", "GET /v1/pages/{id}", self._get_page),
            ("PATCH", f"/v1/pages/{hex_id}", "PATCH /v1/pages/{id}", self._patch_page),
            (
                "PATCH",
                f"/v1/blocks/{hex_id}/children",
                "PATCH /v1/blocks/{id}/children",
                self._append_children,
            ),
            (
                "GET",
                f"/v1/blocks/{hex_id}/children",
                "GET /v1/blocks/{id}/children",
                self._list_children,
            ),
            ("POST", "/v1/file_uploads", "POST /v1/file_uploads", self._post_upload),
            (
                "POST",
                f"/v1/file_uploads/{hex_id}/send",
                "POST /v1/file_uploads/{id}/send",
                self._send_upload,
            ),
            (
                "POST",
                f"/v1/file_uploads/{hex_id}/complete",
                "POST /v1/file_uploads/{id}/complete",
                self._complete_upload,
            ),
            (
                "GET",
                f"/v1/file_uploads/{hex_id}",
                "GET /v1/file_uploads/{id}",
                self._get_upload,
            ),
        ]
        self._routes = [
            (method, re.compile(pattern + "/?"), endpoint, handler)
            for method, pattern, endpoint, handler in table
        ]

    def _route(self, method: str, path: str) -> tuple[str, Handler, list[str]]:
        known_path = False
        for route_method, pattern, endpoint, handler in self._routes:
            matched = pattern.fullmatch(path)
            if matched:
                known_path = True
                if route_method == method:
                    return endpoint, handler, list(matched.groups())
        if known_path:
            raise NotionError(405, "invalid_request", "Unsupported request method.")
        raise NotionError(400, "invalid_request_url", "Invalid request URL.")

    def _take_rate_token(self) -> None:
        with self._lock:
            if self._rate_per_s is None:
                return
            now = self._rate_clock()
            self._bucket = min(
                self._bucket_size, self._bucket + (now - self._bucket_at) * self._rate_per_s
            )
            self._bucket_at = now
            if self._bucket >= 1:
                self._bucket -= 1
                return
            wait_s = max(1, math.ceil((1 - self._bucket) / self._rate_per_s))
        raise fault_error("429", wait_s)

    def _pick_fault(self, method: str, path: str) -> PickedFault | None:
        with self._lock:
            for fault in self._request_faults:
                if fault.method == method and fault.path_pattern.search(path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._request_faults.remove(fault)
                    # Notion limits and sheds load before doing any work.
                    after_apply = fault.after_apply and fault.kind not in ("429", "529")
                    return PickedFault(fault.kind, after_apply, fault.retry_after_s)
            if self._fault_rate <= 0 or self._fault_random.random() >= self._fault_rate:
                return None
            kind = self._fault_random.choice(self._fault_kinds)
            is_write = method in ("POST", "PATCH", "DELETE")
            before_work = kind in ("429", "529")
            after_apply = is_write and not before_work and self._fault_random.random() < 0.5
            return PickedFault(kind, after_apply, 1)

    def handle_api(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Json, dict[str, str], str]:
        """Answers one API request: (status, JSON body, extra headers, endpoint name)."""
        split = urlsplit(target)
        path = split.path
        query = parse_qs(split.query)
        endpoint = f"{method} {path}"
        try:
            endpoint, handler, path_ids = self._route(method, path)
            token = self._authenticate(headers)
            if not headers.get("notion-version"):
                raise validation_error_missing_version()
            self._take_rate_token()
            fault = self._pick_fault(method, path)
            if fault is not None and not fault.after_apply:
                if fault.kind == "timeout":
                    time.sleep(self.fault_delay_s)
                raise fault_error(fault.kind, fault.retry_after_s)
            self._check_capability(token, method, endpoint)
            payload = self._json_body(headers, body)
            with self._lock:
                result = handler(
                    token, path_ids, payload, query, body, headers.get("content-type", "")
                )
            if fault is not None:
                if fault.kind == "timeout":
                    time.sleep(self.fault_delay_s)
                    return 200, result, {}, endpoint
                raise fault_error(fault.kind, fault.retry_after_s)
            return 200, result, {}, endpoint
        except NotionError as error:
            return (
                error.status,
                {
                    "object": "error",
                    "status": error.status,
                    "code": error.code,
                    "message": error.message,
                    "request_id": new_id(),
                },
                error.headers,
                endpoint,
            )

    def _authenticate(self, headers: dict[str, str]) -> str:
        authorization = headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip()
        if not authorization.startswith("Bearer ") or token not in self._bots:
            raise NotionError(401, "unauthorized", "API token is invalid.")
        return token

    def _check_capability(self, token: str, method: str, endpoint: str) -> None:
        """Notion answers 403 restricted_resource when the integration lacks a capability."""
        if endpoint == "GET /v1/users/me":
            return
        needed: Capability = "read_content"
        if method == "PATCH":
            appends = endpoint == "PATCH /v1/blocks/{id}/children"
            needed = "insert_content" if appends else "update_content"
        elif method == "POST" and not endpoint.endswith("/query"):
            needed = "insert_content"
        if needed not in self._capabilities[token]:
            raise NotionError(
                403,
                "restricted_resource",
                "Insufficient permissions for this endpoint.",
            )

    @staticmethod
    def _json_body(headers: dict[str, str], body: bytes) -> Json:
        if not body or not headers.get("content-type", "").startswith("application/json"):
            return {}
        if len(body) > JSON_BODY_MAX_BYTES:
            raise NotionError(
                413,
                "payload_too_large",
                f"Request body is {len(body)} bytes; the limit is 500KB.",
            )
        try:
            parsed = json.loads(body)
        except ValueError as error:
            raise NotionError(400, "invalid_json", "Error parsing JSON body.") from error
        if not isinstance(parsed, dict):
            raise NotionError(400, "invalid_json", "Error parsing JSON body.")
        return parsed

    def serve_file(self, path: str) -> tuple[int, bytes, str]:
        """The bytes behind a file URL this server handed out (no auth, like S3 links)."""
        upload_id = path.removeprefix(FILES_PATH).split("/")[0]
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload.status != "uploaded":
                return 404, b"Not Found", "text/plain"
            return 200, upload.content, upload.content_type

    def record(self, method: str, path: str, endpoint: str, status: int, started: float) -> None:
        with self._lock:
            self.requests.append(
                RequestRecord(method, path, endpoint, status, started, time.monotonic() - started)
            )

    # ----- visibility ----------------------------------------------------------------

    def _ancestors(self, object_id: str) -> Iterator[str]:
        current: str | None = object_id
        while current is not None:
            yield current
            current = self._parent_of(current)

    def _parent_of(self, object_id: str) -> str | None:
        if object_id in self._data_sources:
            return self._data_sources[object_id].database_id
        if object_id in self._databases:
            return self._databases[object_id].parent_page_id
        holder: Page | Block | None = self._pages.get(object_id) or self._blocks.get(object_id)
        if holder is None:
            return None
        parent = holder.parent
        parent_type = parent["type"]
        if parent_type == "workspace":
            return None
        parent_id = parent[parent_type]
        return parent_id if isinstance(parent_id, str) else None

    def _visible(self, token: str, object_id: str) -> bool:
        shared = self._shared[token]
        return any(ancestor in shared for ancestor in self._ancestors(object_id))

    def _database(self, token: str, database_id: str) -> Database:
        database = self._databases.get(database_id)
        if database is None or not self._visible(token, database_id):
            raise not_found("database", database_id)
        return database

    def _data_source(self, token: str, data_source_id: str) -> DataSource:
        source = self._data_sources.get(data_source_id)
        if source is None or not self._visible(token, data_source_id):
            raise not_found("data_source", data_source_id)
        return source

    def _page(self, token: str, page_id: str) -> Page:
        page = self._pages.get(page_id)
        if page is None or not self._visible(token, page_id):
            raise not_found("page", page_id)
        return page

    def _upload(self, token: str, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.created_by != self._bots[token]:
            raise not_found("file_upload", upload_id)
        return upload

    # ----- users ---------------------------------------------------------------------

    def _get_me(self, token: str, *_: Any) -> Json:
        me = json.loads(json.dumps(self._users[self._bots[token]]))
        me["bot"]["workspace_id"] = self.workspace_id
        me["bot"]["workspace_limits"] = {"max_file_upload_size_in_bytes": self.upload_limit_bytes}
        return dict(me)

    def _list_users(
        self, token: str, ids: list[str], body: Json, query: dict[str, list[str]], *_: Any
    ) -> Json:
        return self._paginate(list(self._users.values()), query, "user", key="id")

    def _get_user(self, token: str, ids: list[str], *_: Any) -> Json:
        user_id = normalize_id(ids[0], "user_id")
        if user_id not in self._users:
            raise not_found("user", user_id)
        return self._users[user_id]

    # ----- databases and data sources ------------------------------------------------

    def _post_database(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        parent = body.get("parent")
        if not isinstance(parent, dict) or "page_id" not in parent:
            raise validation_error(
                "body failed validation: body.parent.page_id should be defined, "
                "instead was `undefined`."
            )
        self._page(token, body_id(parent["page_id"], "body.parent.page_id"))
        database = self._create_database(body, self._bots[token])
        return self._render_database(database)

    def _create_database(self, body: Json, editor: str) -> Database:
        now = self._now()
        initial = body.get("initial_data_source") or {}
        if "properties" in body:
            raise validation_error(
                "body failed validation: body.properties is not supported in this API "
                "version; use body.initial_data_source.properties."
            )
        database = Database(
            id=new_id(),
            parent_page_id=body_id(body["parent"]["page_id"], "body.parent.page_id"),
            title=parse_rich_text(body.get("title", []), "body.title"),
            description=parse_rich_text(body.get("description", []), "body.description"),
            is_inline=bool(body.get("is_inline", False)),
            created_time=now,
            last_edited_time=now,
        )
        source = DataSource(
            id=new_id(),
            database_id=database.id,
            name=plain_text(database.title),
            properties={},
            created_time=now,
            last_edited_time=now,
        )
        self._databases[database.id] = database
        self._data_sources[source.id] = source
        database.data_source_ids.append(source.id)
        raw_properties = initial.get("properties") or {}
        if not isinstance(raw_properties, dict):
            raise validation_error(
                "body failed validation: body.initial_data_source.properties should be an object."
            )
        if not any("title" in spec for spec in raw_properties.values() if isinstance(spec, dict)):
            raw_properties = {"Name": {"title": {}}, **raw_properties}
        self._change_schema(source, raw_properties)
        return database

    def _get_database(self, token: str, ids: list[str], *_: Any) -> Json:
        database_id = normalize_id(ids[0], "database_id")
        return self._render_database(self._database(token, database_id))

    def _patch_database(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        database = self._database(token, normalize_id(ids[0], "database_id"))
        if "properties" in body:
            raise validation_error(
                "body failed validation: body.properties is not supported in this API "
                "version; update the data source's properties instead."
            )
        if "title" in body:
            database.title = parse_rich_text(body["title"], "body.title")
        if "description" in body:
            database.description = parse_rich_text(body["description"], "body.description")
        if "is_inline" in body:
            database.is_inline = bool(body["is_inline"])
        if "in_trash" in body:
            database.in_trash = bool(body["in_trash"])
        database.last_edited_time = self._now()
        return self._render_database(database)

    def _get_data_source(self, token: str, ids: list[str], *_: Any) -> Json:
        source = self._data_source(token, normalize_id(ids[0], "data_source_id"))
        return self._render_data_source(source)

    def _patch_data_source(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        source = self._data_source(token, normalize_id(ids[0], "data_source_id"))
        if "title" in body:
            source.name = plain_text(parse_rich_text(body["title"], "body.title"))
        properties = body.get("properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise validation_error(
                    "body failed validation: body.properties should be an object."
                )
            self._change_schema(source, properties)
        source.last_edited_time = self._now()
        return self._render_data_source(source)

    def _find_property(self, source: DataSource, key: str) -> Json | None:
        if key in source.properties:
            return source.properties[key]
        return next(
            (spec for spec in source.properties.values() if spec["id"] == unquote(key)), None
        )

    def _change_schema(self, source: DataSource, changes: Json) -> None:
        """Adds, renames, retypes or removes properties (the value None removes one)."""
        for key, change in changes.items():
            existing = self._find_property(source, key)
            if change is None:
                if existing is None:
                    raise validation_error(f"{key} is not a property that exists.")
                if existing["type"] == "title":
                    raise validation_error("Cannot delete the title property.")
                del source.properties[existing["name"]]
                continue
            if not isinstance(change, dict):
                raise validation_error(
                    f"body failed validation: body.properties.{key} should be an object."
                )
            kinds = [kind for kind in change if kind in PROPERTY_TYPES]
            unknown = [kind for kind in change if kind not in PROPERTY_TYPES and kind != "name"]
            if unknown or len(kinds) > 1:
                raise validation_error(
                    f"body failed validation: body.properties.{key} has an unsupported "
                    f"property type `{(unknown or kinds)[0]}`."
                )
            new_name = str(change.get("name", key if existing is None else existing["name"]))
            if existing is None and not kinds:
                raise validation_error(f"{key} is not a property that exists.")
            if existing is not None and existing["name"] != new_name:
                if new_name in source.properties:
                    raise validation_error(f"A property named {new_name} already exists.")
                source.properties = {
                    (new_name if name == existing["name"] else name): spec
                    for name, spec in source.properties.items()
                }
                existing["name"] = new_name
            if kinds:
                kind = kinds[0]
                spec = existing or {"id": "title" if kind == "title" else self._property_id()}
                spec.update({"name": new_name, "type": kind})
                for other_kind in PROPERTY_TYPES:
                    spec.pop(other_kind, None)
                spec[kind] = self._property_config(source, spec, kind, change[kind] or {})
                source.properties[new_name] = spec

    @staticmethod
    def _property_id() -> str:
        return quote(uuid.uuid4().hex[:4], safe="")

    def _property_config(self, source: DataSource, spec: Json, kind: str, config: Json) -> Json:
        if kind in ("select", "status"):
            options = config.get("options", [])
            if kind == "status" and not options:
                options = [{"name": "Not started"}, {"name": "In progress"}, {"name": "Done"}]
            rendered = [
                {"id": new_id(), "name": option["name"], "color": option.get("color", "default")}
                for option in options
            ]
            result: Json = {"options": rendered}
            if kind == "status":
                result["groups"] = [
                    {
                        "id": new_id(),
                        "name": "To-do",
                        "color": "gray",
                        "option_ids": [option["id"] for option in rendered],
                    }
                ]
            return result
        if kind == "number":
            return {"format": config.get("format", "number")}
        if kind == "relation":
            return self._relation_config(source, spec, config)
        return {}

    def _relation_config(self, source: DataSource, spec: Json, config: Json) -> Json:
        name = spec["name"]
        target_id = body_id(
            config.get("data_source_id"), f"body.properties.{name}.relation.data_source_id"
        )
        target = self._data_sources.get(target_id)
        if target is None:
            raise not_found("data_source", target_id)
        relation_type = config.get("type", "single_property")
        if relation_type == "single_property":
            return {
                "database_id": target.database_id,
                "data_source_id": target.id,
                "type": "single_property",
                "single_property": {},
            }
        dual = config.get("dual_property") or {}
        synced_name = (
            self.reverse_relation_name
            or dual.get("synced_property_name")
            or f"Related to {source.name} ({name})"
        )
        synced_id = self._property_id()
        target.properties[synced_name] = {
            "id": synced_id,
            "name": synced_name,
            "type": "relation",
            "relation": {
                "database_id": source.database_id,
                "data_source_id": source.id,
                "type": "dual_property",
                "dual_property": {"synced_property_name": name, "synced_property_id": spec["id"]},
            },
        }
        return {
            "database_id": target.database_id,
            "data_source_id": target.id,
            "type": "dual_property",
            "dual_property": {
                "synced_property_name": synced_name,
                "synced_property_id": synced_id,
            },
        }

    # ----- queries -------------------------------------------------------------------

    def _query_data_source(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        source = self._data_source(token, normalize_id(ids[0], "data_source_id"))
        pages = [
            self._pages[page_id] for page_id in source.page_ids if not self._pages[page_id].in_trash
        ]
        query_filter = body.get("filter")
        if query_filter is not None:
            pages = [page for page in pages if self._matches(source, page, query_filter)]
        pages = self._sorted(source, pages, body.get("sorts") or [])
        rendered = [self._render_page(page) for page in pages]
        paging: dict[str, list[str]] = {
            key: [str(body[key])] for key in ("start_cursor", "page_size") if key in body
        }
        result = self._paginate(rendered, paging, "page_or_data_source", key="id")
        result["page_or_data_source"] = {}
        return result

    def _paginate(
        self, items: list[Json], query: dict[str, list[str]], kind: str, *, key: str
    ) -> Json:
        size_text = query.get("page_size", [str(PAGE_SIZE_MAX)])[0]
        try:
            size = int(size_text)
        except ValueError as error:
            raise validation_error(
                f"body failed validation: page_size should be a number, instead was `{size_text}`."
            ) from error
        if not 1 <= size <= PAGE_SIZE_MAX:
            raise validation_error(
                f"body failed validation: page_size should be ≤ `{PAGE_SIZE_MAX}` and ≥ `1`, "
                f"instead was `{size}`."
            )
        start = 0
        cursor = query.get("start_cursor", [None])[0]
        if cursor is not None:
            positions = [index for index, item in enumerate(items) if item[key] == cursor]
            if not positions:
                raise validation_error(f"start_cursor provided is invalid: {cursor}")
            start = positions[0]
        window = items[start : start + size]
        has_more = start + size < len(items)
        return {
            "object": "list",
            "results": window,
            "next_cursor": items[start + size][key] if has_more else None,
            "has_more": has_more,
            "type": kind,
            kind: {},
            "request_id": new_id(),
        }

    def _matches(self, source: DataSource, page: Page, condition: Any) -> bool:
        if not isinstance(condition, dict):
            raise validation_error("body failed validation: body.filter should be an object.")
        if "and" in condition:
            return all(self._matches(source, page, part) for part in condition["and"])
        if "or" in condition:
            return any(self._matches(source, page, part) for part in condition["or"])
        if "timestamp" in condition:
            stamp = condition["timestamp"]
            if stamp not in ("last_edited_time", "created_time"):
                raise validation_error(f"body failed validation: unknown timestamp `{stamp}`.")
            moment = floor_minute(getattr(page, stamp))
            return date_matches(moment, condition.get(stamp) or {}, stamp)
        name = condition.get("property")
        spec = self._find_property(source, str(name))
        if spec is None:
            raise validation_error(f"Could not find property with name or id: {name}")
        kind = spec["type"]
        accepted = {"title": ("title", "rich_text"), "rich_text": ("rich_text", "title")}.get(
            kind, (kind,)
        )
        filter_kind = next((key for key in condition if key != "property"), None)
        if filter_kind not in accepted:
            raise validation_error(
                f"body failed validation: filter on property {name} of type {kind} "
                f"should use `{kind}`, instead was `{filter_kind}`."
            )
        test = condition[filter_kind]
        value = self._render_value(page, spec)[kind]
        if kind in ("title", "rich_text", "url"):
            return text_matches(plain_text(value) if kind != "url" else value or "", test)
        if kind in ("select", "status"):
            return text_matches(value["name"] if value else "", test)
        if kind == "number":
            return number_matches(value, test)
        if kind == "checkbox":
            return checkbox_matches(bool(value), test)
        if kind in ("relation", "people"):
            return list_matches([item["id"] for item in value], test)
        if kind in ("date", "last_edited_time"):
            start = value["start"] if kind == "date" and value else value
            start_moment = parse_moment(start, "date") if start else None
            return date_matches(start_moment, test, str(name))
        return list_matches([item["name"] for item in value], test)

    def _sorted(self, source: DataSource, pages: list[Page], sorts: Any) -> list[Page]:
        if not isinstance(sorts, list):
            raise validation_error("body failed validation: body.sorts should be an array.")
        ordered = list(pages)
        for sort in reversed(sorts):
            descending = sort.get("direction", "ascending") == "descending"
            if "timestamp" in sort:
                stamp = sort["timestamp"]

                def stamp_key(page: Page, stamp: str = stamp) -> tuple[bool, Any]:
                    return False, floor_minute(getattr(page, stamp))

                ordered.sort(key=stamp_key, reverse=descending)
                continue
            spec = self._find_property(source, str(sort.get("property")))
            if spec is None:
                raise validation_error(
                    f"Could not find sort property with name or id: {sort.get('property')}"
                )
            present = [page for page in ordered if sort_value(self._render_value(page, spec))]
            empty = [page for page in ordered if not sort_value(self._render_value(page, spec))]

            def value_key(page: Page, spec: Json = spec) -> Any:
                return sort_value(self._render_value(page, spec))[0]

            present.sort(key=value_key, reverse=descending)
            ordered = present + empty
        return ordered

    # ----- pages ---------------------------------------------------------------------

    def _post_page(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise validation_error(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        now = self._now()
        editor = self._bots[token]
        if "data_source_id" in parent or "database_id" in parent:
            if "data_source_id" in parent:
                source_id = body_id(parent["data_source_id"], "body.parent.data_source_id")
                source = self._data_source(token, source_id)
            else:
                database = self._database(
                    token, body_id(parent["database_id"], "body.parent.database_id")
                )
                if len(database.data_source_ids) != 1:
                    raise validation_error(
                        "Databases with multiple data sources need a data_source_id parent."
                    )
                source = self._data_sources[database.data_source_ids[0]]
            page = Page(
                id=new_id(),
                parent={
                    "type": "data_source_id",
                    "data_source_id": source.id,
                    "database_id": source.database_id,
                },
                properties={},
                created_time=now,
                created_by=editor,
                last_edited_time=now,
                last_edited_by=editor,
            )
        elif "page_id" in parent:
            parent_page = self._page(token, body_id(parent["page_id"], "body.parent.page_id"))
            page = Page(
                id=new_id(),
                parent={"type": "page_id", "page_id": parent_page.id},
                properties={"title": []},
                created_time=now,
                created_by=editor,
                last_edited_time=now,
                last_edited_by=editor,
            )
        else:
            raise validation_error(
                "body failed validation: body.parent should have one of data_source_id, "
                "database_id or page_id."
            )
        children = body.get("children") or []
        blocks = self._build_blocks(page.id, children, editor) if children else []
        self._pages[page.id] = page
        try:
            self._write_properties(page, body.get("properties") or {}, editor, creating=True)
        except NotionError:
            del self._pages[page.id]
            raise
        for block in blocks:
            self._blocks[block.id] = block
            page.children.append(block.id)
        self._mark_attached([b.content for b in blocks if b.type in FILE_BLOCK_TYPES])
        if page.parent["type"] == "data_source_id":
            self._data_sources[page.parent["data_source_id"]].page_ids.append(page.id)
        return self._render_page(page)

    def _get_page(self, token: str, ids: list[str], *_: Any) -> Json:
        return self._render_page(self._page(token, normalize_id(ids[0], "page_id")))

    def _patch_page(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        page = self._page(token, normalize_id(ids[0], "page_id"))
        editor = self._bots[token]
        trash_flags = [body[key] for key in ("in_trash", "archived") if key in body]
        if page.in_trash and not (trash_flags and not trash_flags[0]):
            raise validation_error(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        if trash_flags:
            page.in_trash = bool(trash_flags[0])
        self._write_properties(page, body.get("properties") or {}, editor, creating=False)
        return self._render_page(page)

    def _source_of(self, page: Page) -> DataSource | None:
        if page.parent["type"] != "data_source_id":
            return None
        return self._data_sources[page.parent["data_source_id"]]

    def _write_properties(
        self, page: Page, properties: Any, editor: str, *, creating: bool
    ) -> None:
        """Validates every value first, then applies them all (Notion is all or nothing)."""
        if not isinstance(properties, dict):
            raise validation_error("body failed validation: body.properties should be an object.")
        source = self._source_of(page)
        parsed: dict[str, Any] = {}
        specs: dict[str, Json] = {}
        for key, value in properties.items():
            if source is None:
                if key != "title" and not (isinstance(value, dict) and "title" in value):
                    raise validation_error(f"{key} is not a property that exists.")
                raw = value["title"] if isinstance(value, dict) else value
                parsed["title"] = parse_rich_text(raw, f"body.properties.{key}.title")
                continue
            spec = self._find_property(source, key)
            if spec is None:
                raise validation_error(f"{key} is not a property that exists.")
            specs[spec["name"]] = spec
            parsed[spec["name"]] = self._parse_value(spec, value)
        for name, value in parsed.items():
            spec = specs.get(name)
            if spec is not None and spec["type"] == "relation":
                self._sync_relation(page, spec, page.properties.get(name, []), value, editor)
            if spec is not None and spec["type"] == "files":
                self._mark_attached(value)
            page.properties[name] = value
        self._touch(page, editor)
        if not creating and parsed:
            changed = [specs[name]["id"] if name in specs else "title" for name in parsed]
            self._page_properties_updated(page, changed, editor)

    # ----- webhooks ------------------------------------------------------------------

    def _page_properties_updated(self, page: Page, property_ids: list[str], editor: str) -> None:
        """The first edit of a page goes out at once; the next minute's edits in one event.

        The window is measured on the server's clock: it ends in real time, or at once
        when `advance_clock` moves past its end.
        """
        author_type = "bot" if editor in self._bots.values() else "person"
        now = self._now()
        for subscription in self._subscriptions:
            state = subscription.pages.get(page.id)
            if state is None or now >= state.window_ends:
                window = timedelta(seconds=subscription.aggregation_s)
                subscription.pages[page.id] = _PageEvents(now + window)
                event = self._page_event(subscription, page.id, {editor: author_type}, property_ids)
                threading.Thread(target=self._deliver, args=(subscription, event)).start()
                continue
            state.authors[editor] = author_type
            state.properties.extend(p for p in property_ids if p not in state.properties)
            if state.timer is None:
                state.timer = threading.Timer(
                    (state.window_ends - now).total_seconds(),
                    self._deliver_aggregated,
                    (subscription, page.id),
                )
                state.timer.daemon = True
                state.timer.start()

    def _deliver_aggregated(self, subscription: WebhookSubscription, page_id: str) -> None:
        with self._lock:
            state = subscription.pages[page_id]
            timer = state.timer
            if timer is None:
                return
            # Either the timer or advance_clock sends the event, whichever comes first.
            if timer is not threading.current_thread():
                timer.cancel()
            event = self._page_event(subscription, page_id, state.authors, state.properties)
            state.timer = None
            state.authors, state.properties = {}, []
        self._deliver(subscription, event)

    def _page_event(
        self,
        subscription: WebhookSubscription,
        page_id: str,
        authors: dict[str, str],
        property_ids: list[str],
    ) -> Json:
        page = self._pages[page_id]
        parent = page.parent
        return {
            "id": new_id(),
            "timestamp": iso(self._now()),
            "workspace_id": self.workspace_id,
            "workspace_name": self.workspace_name,
            "subscription_id": subscription.id,
            "integration_id": subscription.integration_id,
            "type": "page.properties_updated",
            "authors": [{"id": author, "type": kind} for author, kind in authors.items()],
            "attempt_number": 1,
            "entity": {"id": page.id, "type": "page"},
            "data": {
                "parent": {
                    "id": parent.get("data_source_id") or parent.get("page_id"),
                    "type": "database" if "data_source_id" in parent else "page",
                    "data_source_id": parent.get("data_source_id"),
                },
                "updated_properties": list(property_ids),
            },
        }

    def _deliver(self, subscription: WebhookSubscription, event: Json) -> None:
        body = json.dumps(event).encode()
        digest = hmac.new(subscription.verification_token.encode(), body, hashlib.sha256)
        try:
            answer = httpx.post(
                subscription.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Notion-Signature": f"sha256={digest.hexdigest()}",
                },
                timeout=30,
            )
            status = answer.status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            subscription.deliveries.append(WebhookDelivery(event, status))

    def _mark_attached(self, files: list[Json]) -> None:
        """An attached upload no longer expires (Notion then shows expiry_time null)."""
        for item in files:
            if item["type"] == "file_upload":
                self._uploads[item["upload_id"]].attached = True

    def _touch(self, page: Page, editor: str) -> None:
        page.last_edited_time = self._now()
        page.last_edited_by = editor

    def _parse_value(self, spec: Json, value: Any) -> Any:
        name, kind = spec["name"], spec["type"]
        where = f"body.properties.{name}"
        if kind == "last_edited_time":
            raise validation_error(f"{name} is a read-only property and cannot be written.")
        if not isinstance(value, dict) or kind not in value:
            found = next(iter(value), "undefined") if isinstance(value, dict) else "undefined"
            raise validation_error(
                f"body failed validation: {where}.{kind} should be defined, instead was "
                f"`undefined` ({name} is expected to be {kind}, got `{found}`)."
            )
        raw = value[kind]
        where = f"{where}.{kind}"
        if kind in ("title", "rich_text"):
            return parse_rich_text(raw, where)
        if kind == "number":
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                raise validation_error(f"body failed validation: {where} should be a number.")
            return raw
        if kind in ("select", "status"):
            return self._parse_option(spec, raw, where)
        if kind == "date":
            if raw is None:
                return None
            if not isinstance(raw, dict) or "start" not in raw:
                raise validation_error(f"body failed validation: {where}.start should be defined.")
            parse_moment(raw["start"], f"{where}.start")
            if raw.get("end") is not None:
                parse_moment(raw["end"], f"{where}.end")
            return {"start": raw["start"], "end": raw.get("end"), "time_zone": raw.get("time_zone")}
        if kind == "url":
            if raw is not None and not isinstance(raw, str):
                raise validation_error(f"body failed validation: {where} should be a string.")
            return raw if raw is None else check_url(raw, where)
        if kind == "checkbox":
            if not isinstance(raw, bool):
                raise validation_error(f"body failed validation: {where} should be a boolean.")
            return raw
        items = check_array(raw, where)
        if kind == "relation":
            related = [body_id(item.get("id"), f"{where}[{i}].id") for i, item in enumerate(items)]
            target_id = spec["relation"]["data_source_id"]
            for page_id in related:
                target = self._pages.get(page_id)
                if target is None or target.parent.get("data_source_id") != target_id:
                    raise validation_error(
                        f"Relation {name} can only link pages of data source {target_id}; "
                        f"{page_id} is not one."
                    )
            return list(dict.fromkeys(related))
        if kind == "people":
            people = [body_id(item.get("id"), f"{where}[{i}].id") for i, item in enumerate(items)]
            for person in people:
                if person not in self._users:
                    raise validation_error(f"Could not find user with ID: {person}.")
            return people
        return [self._parse_file(item, f"{where}[{index}]") for index, item in enumerate(items)]

    def _parse_option(self, spec: Json, raw: Any, where: str) -> Json | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or not ({"name", "id"} & raw.keys()):
            raise validation_error(f"body failed validation: {where}.name should be defined.")
        options: list[Json] = spec[spec["type"]]["options"]
        for option in options:
            if option["name"] == raw.get("name") or option["id"] == raw.get("id"):
                return option
        if spec["type"] == "status" or "name" not in raw:
            raise validation_error(
                f'Invalid status option. Status option "{raw.get("name", raw.get("id"))}" '
                f"does not exist for property {spec['name']}."
                if spec["type"] == "status"
                else f"Select option with id {raw.get('id')} does not exist."
            )
        option = {"id": new_id(), "name": str(raw["name"]), "color": "default"}
        options.append(option)
        return option

    def _parse_file(self, item: Any, where: str) -> Json:
        if not isinstance(item, dict):
            raise validation_error(f"body failed validation: {where} should be an object.")
        kind = item.get("type") or ("file_upload" if "file_upload" in item else "external")
        if kind == "external":
            url = (item.get("external") or {}).get("url")
            if not isinstance(url, str):
                raise validation_error(
                    f"body failed validation: {where}.external.url should be defined."
                )
            check_url(url, f"{where}.external.url")
            return {"type": "external", "url": url, "name": item.get("name") or url[:100]}
        if kind != "file_upload":
            raise validation_error(
                f"body failed validation: {where}.type should be `file_upload` or `external`."
            )
        upload = self._attachable_upload((item.get("file_upload") or {}).get("id"), where)
        return {
            "type": "file_upload",
            "upload_id": upload.id,
            "name": item.get("name") or upload.filename,
        }

    def _attachable_upload(self, raw_id: Any, where: str) -> Upload:
        upload_id = body_id(raw_id, f"{where}.file_upload.id")
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise validation_error(f"Could not find file_upload with ID: {upload_id}.")
        if not upload.attached and upload.expiry_time <= self._now():
            raise validation_error(f"File upload {upload_id} has expired. Upload it again.")
        if upload.status != "uploaded":
            raise validation_error(
                f"File upload {upload_id} is in status `{upload.status}`; only an `uploaded` "
                "file upload can be attached."
            )
        return upload

    def _sync_relation(
        self, page: Page, spec: Json, old: list[str], new: list[str], editor: str
    ) -> None:
        config = spec["relation"]
        if config["type"] != "dual_property":
            return
        synced_name = config["dual_property"]["synced_property_name"]
        for related_id in set(old) ^ set(new):
            related = self._pages[related_id]
            links: list[str] = list(related.properties.get(synced_name, []))
            if related_id in new and page.id not in links:
                links.append(page.id)
            elif related_id not in new and page.id in links:
                links.remove(page.id)
            related.properties[synced_name] = links
            self._touch(related, editor)

    # ----- blocks --------------------------------------------------------------------

    def _append_children(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        holder_id = normalize_id(ids[0], "block_id")
        holder: Page | Block
        if holder_id in self._pages:
            holder = self._page(token, holder_id)
        elif holder_id in self._blocks and self._visible(token, holder_id):
            holder = self._blocks[holder_id]
        else:
            raise not_found("block", holder_id)
        children = body.get("children")
        if not isinstance(children, list) or not children:
            raise validation_error(
                "body failed validation: body.children should be a non-empty array."
            )
        editor = self._bots[token]
        blocks = self._build_blocks(holder_id, children, editor)
        for block in blocks:
            self._blocks[block.id] = block
            holder.children.append(block.id)
        self._mark_attached([b.content for b in blocks if b.type in FILE_BLOCK_TYPES])
        if isinstance(holder, Page):
            self._touch(holder, editor)
        result = self._paginate(
            [self._render_block(block) for block in blocks], {}, "block", key="id"
        )
        return result

    def _build_blocks(self, holder_id: str, children: Any, editor: str) -> list[Block]:
        items = check_array(children, "body.children")
        parent_type = (
            "page_id" if holder_id in self._pages or holder_id not in self._blocks else "block_id"
        )
        blocks = []
        for index, child in enumerate(items):
            where = f"body.children[{index}]"
            if not isinstance(child, dict):
                raise validation_error(f"body failed validation: {where} should be an object.")
            kind = child.get("type") or next(
                (key for key in child if key in TEXT_BLOCK_TYPES + FILE_BLOCK_TYPES), None
            )
            if kind not in TEXT_BLOCK_TYPES + FILE_BLOCK_TYPES or not isinstance(
                child.get(kind), dict
            ):
                raise validation_error(
                    f"body failed validation: {where}.type `{kind}` is not supported here."
                )
            raw = child[kind]
            if kind in TEXT_BLOCK_TYPES:
                content: Json = {
                    "rich_text": parse_rich_text(
                        raw.get("rich_text", []), f"{where}.{kind}.rich_text"
                    ),
                    "color": raw.get("color", "default"),
                }
                if kind.startswith("heading_"):
                    content["is_toggleable"] = bool(raw.get("is_toggleable", False))
                if kind == "to_do":
                    content["checked"] = bool(raw.get("checked", False))
            else:
                content = self._parse_file(raw, f"{where}.{kind}")
                content["caption"] = parse_rich_text(
                    raw.get("caption", []), f"{where}.{kind}.caption"
                )
            blocks.append(
                Block(
                    id=new_id(),
                    parent={"type": parent_type, parent_type: holder_id},
                    type=kind,
                    content=content,
                    created_time=self._now(),
                    created_by=editor,
                )
            )
        return blocks

    def _list_children(
        self, token: str, ids: list[str], body: Json, query: dict[str, list[str]], *_: Any
    ) -> Json:
        holder_id = normalize_id(ids[0], "block_id")
        holder: Page | Block
        if holder_id in self._pages:
            holder = self._page(token, holder_id)
        elif holder_id in self._blocks and self._visible(token, holder_id):
            holder = self._blocks[holder_id]
        else:
            raise not_found("block", holder_id)
        rendered = [self._render_block(self._blocks[child]) for child in holder.children]
        return self._paginate(rendered, query, "block", key="id")

    # ----- file uploads --------------------------------------------------------------

    def _post_upload(self, token: str, ids: list[str], body: Json, *_: Any) -> Json:
        mode = body.get("mode", "single_part")
        if mode not in ("single_part", "multi_part"):
            raise validation_error(
                f"body failed validation: body.mode should be `single_part` or `multi_part`, "
                f"instead was `{mode}`."
            )
        filename = body.get("filename")
        parts = body.get("number_of_parts")
        if mode == "multi_part":
            if not isinstance(filename, str) or not filename:
                raise validation_error("body.filename is required for multi_part uploads.")
            if not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS:
                raise validation_error(
                    f"body.number_of_parts should be between 1 and {MAX_PARTS} for "
                    "multi_part uploads."
                )
        elif parts is not None:
            raise validation_error("body.number_of_parts is only allowed for multi_part uploads.")
        if mode == "multi_part" and self.plan == "free":
            raise validation_error(
                "Multi-part file uploads are only available in paid workspaces. This "
                f"workspace accepts files up to {self.upload_limit_bytes} bytes."
            )
        if isinstance(filename, str) and len(filename.encode()) > FILE_NAME_MAX_BYTES:
            raise validation_error(
                f"body failed validation: body.filename.length should be ≤ "
                f"`{FILE_NAME_MAX_BYTES}` bytes, instead was `{len(filename.encode())}`."
            )
        name = filename if isinstance(filename, str) and filename else "upload.bin"
        content_type = body.get("content_type") or (
            mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        now = self._now()
        upload = Upload(
            id=new_id(),
            mode=mode,
            filename=name,
            content_type=str(content_type),
            created_time=now,
            expiry_time=now + UPLOAD_LIFETIME,
            created_by=self._bots[token],
            number_of_parts=parts if isinstance(parts, int) else 1,
        )
        self._uploads[upload.id] = upload
        return self._render_upload(upload)

    def _send_upload(
        self,
        token: str,
        ids: list[str],
        body: Json,
        query: dict[str, list[str]],
        raw_body: bytes,
        content_type: str,
    ) -> Json:
        upload = self._upload(token, normalize_id(ids[0], "file_upload_id"))
        fields = parse_form_data(content_type, raw_body)
        if "file" not in fields:
            raise validation_error("body failed validation: body.file should be defined.")
        data, part_type = fields["file"]
        if upload.status != "pending":
            raise validation_error(
                f"File upload {upload.id} is in status `{upload.status}`; only a pending "
                "upload accepts data."
            )
        if upload.expiry_time <= self._now():
            raise validation_error(f"File upload {upload.id} has expired.")
        if part_type and part_type.split(";")[0].strip() != upload.content_type:
            raise validation_error(
                f"The content type of the sent file (`{part_type}`) does not match the one "
                f"given when the upload was created (`{upload.content_type}`)."
            )
        self._check_upload_size(len(data) + sum(len(part) for part in upload.parts.values()))
        if upload.mode == "single_part":
            if "part_number" in fields:
                raise validation_error("part_number is only allowed for multi_part uploads.")
            if len(data) > SINGLE_PART_MAX_BYTES:
                raise validation_error(
                    f"The file is {len(data)} bytes; single_part uploads are limited to "
                    f"{SINGLE_PART_MAX_BYTES} bytes (20 MB). Use mode multi_part."
                )
            upload.content = data
            upload.status = "uploaded"
        else:
            part_text = fields.get("part_number", (b"", ""))[0].decode()
            if not part_text.isdigit() or not 1 <= int(part_text) <= upload.number_of_parts:
                raise validation_error(
                    f"part_number should be between 1 and {upload.number_of_parts}, "
                    f"instead was `{part_text}`."
                )
            part_number = int(part_text)
            if len(data) > MULTI_PART_MAX_BYTES:
                raise validation_error(
                    f"Part {part_number} is {len(data)} bytes; parts are limited to 20 MB."
                )
            if part_number < upload.number_of_parts and len(data) < MULTI_PART_MIN_BYTES:
                raise validation_error(
                    f"Part {part_number} is {len(data)} bytes; every part except the last "
                    "must be at least 5 MB."
                )
            upload.parts[part_number] = data
        return self._render_upload(upload)

    def _check_upload_size(self, size: int) -> None:
        if size > self.upload_limit_bytes:
            raise validation_error(
                f"The file is {size} bytes, larger than the {self.upload_limit_bytes} bytes "
                "this workspace accepts per file upload."
            )

    def _complete_upload(self, token: str, ids: list[str], *_: Any) -> Json:
        upload = self._upload(token, normalize_id(ids[0], "file_upload_id"))
        if upload.mode != "multi_part":
            raise validation_error("Only multi_part file uploads can be completed.")
        if upload.status != "pending":
            raise validation_error(f"File upload {upload.id} is already {upload.status}.")
        missing = [n for n in range(1, upload.number_of_parts + 1) if n not in upload.parts]
        if missing:
            raise validation_error(
                f"File upload {upload.id} is missing parts {missing}; send them before completing."
            )
        upload.content = b"".join(upload.parts[n] for n in sorted(upload.parts))
        upload.parts.clear()
        upload.status = "uploaded"
        return self._render_upload(upload)

    def _get_upload(self, token: str, ids: list[str], *_: Any) -> Json:
        return self._render_upload(self._upload(token, normalize_id(ids[0], "file_upload_id")))

    # ----- rendering -----------------------------------------------------------------

    def _render_database(self, database: Database) -> Json:
        return {
            "object": "database",
            "id": database.id,
            "created_time": iso(floor_minute(database.created_time)),
            "last_edited_time": iso(floor_minute(database.last_edited_time)),
            "title": database.title,
            "description": database.description,
            "icon": None,
            "cover": None,
            "parent": {"type": "page_id", "page_id": database.parent_page_id},
            "is_inline": database.is_inline,
            "in_trash": database.in_trash,
            "archived": database.in_trash,
            "is_locked": False,
            "data_sources": [
                {"id": source_id, "name": self._data_sources[source_id].name}
                for source_id in database.data_source_ids
            ],
            "url": f"https://www.notion.so/{database.id.replace('-', '')}",
            "public_url": None,
        }

    def _render_data_source(self, source: DataSource) -> Json:
        database = self._databases[source.database_id]
        return {
            "object": "data_source",
            "id": source.id,
            "created_time": iso(floor_minute(source.created_time)),
            "last_edited_time": iso(floor_minute(source.last_edited_time)),
            "properties": json.loads(json.dumps(source.properties)),
            "parent": {"type": "database_id", "database_id": database.id},
            "database_parent": {"type": "page_id", "page_id": database.parent_page_id},
            "title": [rich_text_item(source.name)],
            "description": [],
            "icon": None,
            "cover": None,
            "archived": database.in_trash,
            "in_trash": database.in_trash,
            "is_inline": database.is_inline,
            "url": f"https://www.notion.so/{source.id.replace('-', '')}",
            "public_url": None,
        }

    def _render_page(self, page: Page) -> Json:
        source = self._source_of(page)
        if source is None:
            properties: Json = {
                "title": {"id": "title", "type": "title", "title": page.properties.get("title", [])}
            }
        else:
            properties = {
                name: self._render_value(page, spec) for name, spec in source.properties.items()
            }
        return {
            "object": "page",
            "id": page.id,
            "created_time": iso(floor_minute(page.created_time)),
            "last_edited_time": iso(floor_minute(page.last_edited_time)),
            "created_by": {"object": "user", "id": page.created_by},
            "last_edited_by": {"object": "user", "id": page.last_edited_by},
            "cover": None,
            "icon": None,
            "parent": dict(page.parent),
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "is_locked": False,
            "properties": properties,
            "url": f"https://www.notion.so/{page.id.replace('-', '')}",
            "public_url": None,
        }

    def _render_value(self, page: Page, spec: Json) -> Json:
        kind = spec["type"]
        stored = page.properties.get(spec["name"])
        value: Any
        if kind in ("title", "rich_text", "relation", "people", "files"):
            items = stored or []
            if kind == "relation":
                value = [{"id": item} for item in items]
            elif kind == "people":
                value = [{"object": "user", "id": item} for item in items]
            elif kind == "files":
                value = [self._render_file(item) for item in items]
            else:
                value = items
        elif kind == "status" and stored is None:
            value = spec["status"]["options"][0] if spec["status"]["options"] else None
        elif kind == "checkbox":
            value = bool(stored)
        elif kind == "last_edited_time":
            value = iso(floor_minute(page.last_edited_time))
        else:
            value = stored
        rendered = {"id": spec["id"], "type": kind, kind: value}
        if kind == "relation":
            rendered["has_more"] = False
        return rendered

    def _render_file(self, item: Json) -> Json:
        if item["type"] == "external":
            return {"name": item["name"], "type": "external", "external": {"url": item["url"]}}
        upload = self._uploads[item["upload_id"]]
        expiry = floor_minute(self._now()) + FILE_URL_LIFETIME
        url = (
            f"{self.base_url}{FILES_PATH}{upload.id}/{quote(upload.filename)}"
            f"?expires={int(expiry.timestamp())}"
        )
        return {
            "name": item["name"],
            "type": "file",
            "file": {"url": url, "expiry_time": iso(expiry)},
        }

    def _render_block(self, block: Block) -> Json:
        content = block.content
        if block.type in FILE_BLOCK_TYPES:
            rendered_file = self._render_file(content)
            rendered_file.pop("name")
            content = {**rendered_file, "caption": content["caption"]}
        stamp = iso(floor_minute(block.created_time))
        return {
            "object": "block",
            "id": block.id,
            "parent": dict(block.parent),
            "created_time": stamp,
            "last_edited_time": stamp,
            "created_by": {"object": "user", "id": block.created_by},
            "last_edited_by": {"object": "user", "id": block.created_by},
            "has_children": bool(block.children),
            "archived": block.in_trash,
            "in_trash": block.in_trash,
            "type": block.type,
            block.type: content,
        }

    def _render_upload(self, upload: Upload) -> Json:
        rendered: Json = {
            "object": "file_upload",
            "id": upload.id,
            "created_time": iso(floor_minute(upload.created_time)),
            "last_edited_time": iso(floor_minute(upload.created_time)),
            "expiry_time": None if upload.attached else iso(upload.expiry_time),
            "created_by": {"id": upload.created_by, "type": "bot"},
            "upload_url": f"{self.base_url}/v1/file_uploads/{upload.id}/send",
            "archived": False,
            "status": upload.status,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "content_length": len(upload.content) if upload.status == "uploaded" else None,
            "file_import_result": None,
        }
        if upload.mode == "multi_part":
            rendered["complete_url"] = f"{self.base_url}/v1/file_uploads/{upload.id}/complete"
            rendered["number_of_parts"] = {
                "total": upload.number_of_parts,
                "sent": upload.number_of_parts
                if upload.status == "uploaded"
                else len(upload.parts),
            }
        if upload.status == "uploaded":
            rendered["upload_url"] = None
        return rendered


def validation_error_missing_version() -> NotionError:
    return NotionError(
        400,
        "missing_version",
        "Notion-Version header failed validation: Notion-Version header should be defined, "
        "instead was `undefined`.",
    )


def check_array(value: Any, where: str) -> list[Json]:
    if not isinstance(value, list):
        raise validation_error(f"body failed validation: {where} should be an array.")
    if len(value) > ARRAY_MAX:
        raise validation_error(
            f"body failed validation: {where}.length should be ≤ `{ARRAY_MAX}`, "
            f"instead was `{len(value)}`."
        )
    if not all(isinstance(item, dict) for item in value):
        raise validation_error(
            f"body failed validation: every item of {where} should be an object."
        )
    return value


def text_matches(value: str, test: Json) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "equals": lambda wanted: value == wanted,
        "does_not_equal": lambda wanted: value != wanted,
        "contains": lambda wanted: str(wanted) in value,
        "does_not_contain": lambda wanted: str(wanted) not in value,
        "starts_with": lambda wanted: value.startswith(str(wanted)),
        "ends_with": lambda wanted: value.endswith(str(wanted)),
        "is_empty": lambda _: value == "",
        "is_not_empty": lambda _: value != "",
    }
    return apply_checks(checks, test)


def number_matches(value: float | None, test: Json) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "equals": lambda wanted: value == wanted,
        "does_not_equal": lambda wanted: value != wanted,
        "greater_than": lambda wanted: value is not None and value > wanted,
        "less_than": lambda wanted: value is not None and value < wanted,
        "greater_than_or_equal_to": lambda wanted: value is not None and value >= wanted,
        "less_than_or_equal_to": lambda wanted: value is not None and value <= wanted,
        "is_empty": lambda _: value is None,
        "is_not_empty": lambda _: value is not None,
    }
    return apply_checks(checks, test)


def checkbox_matches(value: bool, test: Json) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "equals": lambda wanted: value == wanted,
        "does_not_equal": lambda wanted: value != wanted,
    }
    return apply_checks(checks, test)


def list_matches(values: list[str], test: Json) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "contains": lambda wanted: (
            wanted in values
            or str(wanted).replace("-", "") in [value.replace("-", "") for value in values]
        ),
        "does_not_contain": lambda wanted: wanted not in values,
        "is_empty": lambda _: not values,
        "is_not_empty": lambda _: bool(values),
    }
    return apply_checks(checks, test)


def date_matches(moment: datetime | None, test: Json, where: str) -> bool:
    def compare(operator: Callable[[datetime, datetime], bool]) -> Callable[[Any], bool]:
        return lambda wanted: (
            moment is not None and operator(moment, parse_moment(wanted, f"filter.{where}"))
        )

    checks: dict[str, Callable[[Any], bool]] = {
        "equals": compare(lambda left, right: left == right),
        "before": compare(lambda left, right: left < right),
        "after": compare(lambda left, right: left > right),
        "on_or_before": compare(lambda left, right: left <= right),
        "on_or_after": compare(lambda left, right: left >= right),
        "is_empty": lambda _: moment is None,
        "is_not_empty": lambda _: moment is not None,
    }
    return apply_checks(checks, test)


def apply_checks(checks: dict[str, Callable[[Any], bool]], test: Any) -> bool:
    if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in checks:
        raise validation_error(
            f"body failed validation: filter condition should be one of {sorted(checks)}, "
            f"instead was `{test}`."
        )
    condition, wanted = next(iter(test.items()))
    return checks[condition](wanted)


def sort_value(rendered: Json) -> tuple[Any, ...]:
    """A sortable value for a property, or () when the property is empty."""
    kind = rendered["type"]
    raw = rendered[kind]
    if kind in ("title", "rich_text"):
        text = plain_text(raw)
        return (text,) if text else ()
    if kind in ("select", "status"):
        return (raw["name"],) if raw else ()
    if kind == "date":
        return (raw["start"],) if raw else ()
    if kind in ("relation", "people", "files"):
        return (len(raw),) if raw else ()
    return (raw,) if raw is not None else ()


def parse_form_data(content_type: str, body: bytes) -> dict[str, tuple[bytes, str]]:
    """Fields of a multipart/form-data body: name -> (bytes, the part's content type)."""
    matched = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or matched is None:
        raise validation_error(
            "The request body should be multipart/form-data with a `file` field."
        )
    delimiter = b"--" + matched.group(1).encode()
    fields: dict[str, tuple[bytes, str]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {
            line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
            for line in head.decode("utf-8", "replace").split("\r\n")
            if ":" in line
        }
        name = re.search(r'name="([^"]*)"', headers.get("content-disposition", ""))
        if name is not None:
            fields[name.group(1)] = (data.removesuffix(b"\r\n"), headers.get("content-type", ""))
    return fields


def _handler_class(fake: FakeNotion) -> type[BaseHTTPRequestHandler]:
    class NotionRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, keep-alive clients
        # wait for a delayed ACK (~40 ms) on every request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are recorded in `fake.requests`, not printed."""

        def _answer(self) -> None:
            started = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if self.command == "GET" and path.startswith(FILES_PATH):
                status, content, content_type = fake.serve_file(path)
                # Recorded before answering, so a client that has its answer sees it counted.
                fake.record(self.command, path, f"GET {FILES_PATH}{{id}}", status, started)
                self._send(status, content, content_type, {})
                return
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, payload, extra, endpoint = fake.handle_api(
                self.command, self.path, headers, body
            )
            fake.record(self.command, path, endpoint, status, started)
            self._send(status, json.dumps(payload).encode(), "application/json", extra)

        def _send(
            self, status: int, content: bytes, content_type: str, extra: dict[str, str]
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            try:
                self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = _answer
        do_POST = _answer
        do_PATCH = _answer
        do_DELETE = _answer

    return NotionRequestHandler


@contextmanager
def running_fake_notion(
    token: str = DEFAULT_TOKEN,
    *,
    rate_limit_per_s: float | None = None,
    rate_limit_burst: int = 3,
    fault_delay_s: float = 2.0,
) -> Iterator[FakeNotion]:
    """A started fake Notion on a free port, stopped on exit."""
    fake = FakeNotion(
        token,
        rate_limit_per_s=rate_limit_per_s,
        rate_limit_burst=rate_limit_burst,
        fault_delay_s=fault_delay_s,
    ).start()
    try:
        yield fake
    finally:
        fake.stop()
