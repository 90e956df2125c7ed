"""The webhook receiver under hostile clients: a real uvicorn on a real socket, no Notion.

Every test ends with a signed delivery still answered 200: the receiver stays up.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from clipgate.gate import register_project
from clipgate.models import VideoProject
from clipgate.notion.gateway import NotionConfig
from clipgate.notion.webhook import sign
from clipgate.settings import Settings, load_settings
from clipgate.store import Store
from clipgate.wiring import build_store
from deployments.webhook import ReceiverLimits, WebhookReceiver
from tests.notion_workspace import seeded_notion

SECRET = "secret_webhook_verification_token"  # noqa: S105
LIMITS = ReceiverLimits(body_timeout_s=1.0, idle_timeout_s=1, max_connections=50)
MIB = 1024 * 1024

StartReceiver = Callable[..., int]


@pytest.fixture
def start_receiver(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartReceiver]:
    """Starts receivers on free local ports (Notion unreachable unless given); stops them."""
    started: list[WebhookReceiver] = []

    def start(token: str | None = SECRET, notion: NotionConfig | None = None) -> int:
        unreachable = NotionConfig(
            token=SecretStr("secret_notion_integration"),
            tasks_database_id="tasks",
            videos_database_id="videos",
            base_url=f"http://127.0.0.1:{_closed_port()}",
        )
        notion = notion or unreachable
        for name, value in {
            "TOKEN": notion.token.get_secret_value(),
            "TASKS_DATABASE_ID": notion.tasks_database_id,
            "VIDEOS_DATABASE_ID": notion.videos_database_id,
            "BASE_URL": notion.base_url,
            "MAX_ATTEMPTS": str(notion.max_attempts),
            "REQUESTS_PER_SECOND": "50",
            "TIMEOUT_S": "1",
        }.items():
            monkeypatch.setenv(f"CLIPGATE_NOTION__{name}", value)
        if token is None:
            monkeypatch.delenv("CLIPGATE_NOTION_WEBHOOK_TOKEN", raising=False)
        else:
            monkeypatch.setenv("CLIPGATE_NOTION_WEBHOOK_TOKEN", token)
        receiver = WebhookReceiver(load_settings(), port=0, limits=LIMITS)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver.server_address[1]

    yield start
    for receiver in started:
        receiver.shutdown()
        receiver.server_close()


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Captures uvicorn's log too (Prefect's logging config stops it from propagating)."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _event(page_id: str, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or str(uuid.uuid4()),
            "type": "page.properties_updated",
            "authors": [{"id": "reviewer", "type": "person"}],
            "entity": {"id": page_id, "type": "page"},
        }
    ).encode()


def _request(body: bytes, signature: str | None = None, **headers: str) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: clipgate", f"Content-Length: {len(body)}"]
    if signature is not None:
        lines.append(f"X-Notion-Signature: {signature}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _head(*headers: str) -> bytes:
    return ("\r\n".join(["POST / HTTP/1.1", "Host: clipgate", *headers]) + "\r\n\r\n").encode()


def _exchange(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Sends `data` and reads until the server closes, or answers and goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as client:
        client.sendall(data)
        return _read_answer(client)


def _read_answer(client: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := client.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                break
    except ConnectionResetError:
        pass
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _post(port: int, body: bytes, signature: str | None = None, **headers: str) -> int:
    return _status(_exchange(port, _request(body, signature, **headers)))


def _still_serving(port: int) -> bool:
    event = _event("a-page-of-another-workspace")
    return _post(port, event, sign(SECRET, event)) == 200


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _no_tracebacks(log: pytest.LogCaptureFixture) -> None:
    assert [record.getMessage() for record in log.records if record.exc_info] == []


def _push_until_refused(client: socket.socket, chunk: bytes, limit: int) -> int:
    """Send CHUNK until the server closes the connection; return the bytes it took."""
    pushed = 0
    try:
        while pushed < limit:
            client.sendall(chunk)
            pushed += len(chunk)
    except OSError:
        return pushed
    raise AssertionError(f"the server read {limit} bytes of a body it had refused")


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """A 1 GB Content-Length gets 413 at once, the rest is never read, memory stays flat."""
    port = start_receiver()
    megabyte = b"x" * MIB
    rss_before = _rss_bytes()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        head = _head("Content-Length: 1073741824", "X-Notion-Signature: sha256=0")
        client.sendall(head + megabyte[:1024])
        assert _status(_read_answer(client)) == 413
        pushed = _push_until_refused(client, megabyte, limit=256 * MIB)
    assert pushed < 32 * MIB
    assert _rss_bytes() - rss_before < 30 * MIB
    assert _post(port, b"x" * (MIB + 1), sign(SECRET, b"x" * (MIB + 1))) == 413
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_a_chunked_body_is_capped_while_it_is_read(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """A chunked body has no Content-Length to refuse: it gets 413 once it passes 1 MiB."""
    port = start_receiver()
    chunked = _head("Transfer-Encoding: chunked", "X-Notion-Signature: sha256=0")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    # Unterminated, so that the receiver has read all of it when it answers.
    one_byte_over = chunked + chunk * 16 + b"1\r\nx\r\n"
    assert _status(_exchange(port, one_byte_over)) == 413
    assert _status(_exchange(port, chunked + b"zz\r\nxx\r\n")) == 400
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_a_malformed_content_length_gets_400_without_a_traceback(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """A Content-Length that is not one non-negative number is a 400, never a crash."""
    port = start_receiver()
    for content_length in ("abc", "-1", "1e3", "0x10", "", "2, 3", "\u00b2"):
        head = _head(f"Content-Length: {content_length}", "X-Notion-Signature: sha256=0")
        assert _status(_exchange(port, head + b"{}")) == 400, content_length
    twice = _head("Content-Length: 2", "Content-Length: 3", "X-Notion-Signature: sha256=0")
    assert _status(_exchange(port, twice + b"{}")) == 400
    huge = _head(f"Content-Length: {10**12}", "X-Notion-Signature: sha256=0")
    assert _status(_exchange(port, huge + b"{}")) == 413
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_slow_clients_are_cut_off(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """A body that stalls gets 408; a silent connection or a stalled head is closed."""
    port = start_receiver()
    started = time.monotonic()
    stalled_body = _head("Content-Length: 100", "X-Notion-Signature: sha256=0") + b"{"
    assert _status(_exchange(port, stalled_body)) == 408
    assert time.monotonic() - started < 3
    for silent_or_stalled in (b"", b"POST / HTTP/1.1\r\nHost: clipgate\r\n"):
        started = time.monotonic()
        assert _exchange(port, silent_or_stalled) == b""
        assert time.monotonic() - started < 3
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_300_stalled_bodies_hold_no_threads_and_the_rest_get_503(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """300 connections that never finish their body: no thread each, 503 above the limit."""
    port = start_receiver()
    assert _still_serving(port)
    threads_before = threading.active_count()
    stalled = _head("Content-Length: 1000", "X-Notion-Signature: sha256=0") + b"{"
    clients = []
    try:
        for _ in range(300):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            clients[-1].sendall(stalled)
        time.sleep(0.5)
        assert threading.active_count() - threads_before <= 4
        statuses = [_status(_read_answer(client)) for client in clients]
    finally:
        for client in clients:
            client.close()
    # uvicorn counts open connections when a request head arrives: on a loaded machine all
    # 300 may be open before the first head is read, and then every one of them gets 503.
    assert set(statuses) <= {408, 503}
    assert statuses.count(408) <= LIMITS.max_connections
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_deep_json_is_refused_without_recursion(
    start_receiver: StartReceiver, server_log: pytest.LogCaptureFixture
) -> None:
    """A signed body nested deeper than 32 levels gets 400; 32 levels are fine."""
    port = start_receiver()
    for depth in (33, 100_000):
        deep = b"[" * depth + b"]" * depth
        assert _post(port, deep, sign(SECRET, deep)) == 400
    in_strings = json.dumps({"note": "[" * 1000, "type": "other.event"}).encode()
    assert _post(port, in_strings, sign(SECRET, in_strings)) == 200
    event = json.loads(_event("not-ours"))
    event["data"] = json.loads("[" * 31 + "]" * 31)
    nested_32 = json.dumps(event).encode()
    assert _post(port, nested_32, sign(SECRET, nested_32)) == 200
    for not_an_event in (
        b"not json",
        b"[]",
        b'{"type": "page.properties_updated", "entity": {"type": "page", "id": 7}, "id": "x"}',
    ):
        assert _post(port, not_an_event, sign(SECRET, not_an_event)) == 400
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_only_signed_deliveries_are_read_once_a_token_is_configured(
    start_receiver: StartReceiver, settings: Settings, server_log: pytest.LogCaptureFixture
) -> None:
    """Unsigned, mis-signed or odd-signed deliveries get 401; no handshake is taken."""
    port = start_receiver()
    event = _event("not-ours")
    assert _post(port, event) == 401
    assert _post(port, event, sign("not-the-token", event)) == 401
    assert _post(port, event, "sha256=\u00e9\u00e9") == 401
    handshake = json.dumps({"verification_token": "secret_from_an_attacker"}).encode()
    assert _post(port, handshake) == 401
    assert not (settings.home / "notion-webhook-verification-token").exists()
    assert _status(_exchange(port, b"GET / HTTP/1.1\r\nHost: clipgate\r\n\r\n")) == 405
    _no_tracebacks(server_log)
    assert _still_serving(port)


def test_the_handshake_is_taken_once_and_only_in_its_shape(
    start_receiver: StartReceiver, settings: Settings, server_log: pytest.LogCaptureFixture
) -> None:
    """Before a token exists one small handshake is saved, unlogged; later ones never replace it."""
    port = start_receiver(token=None)
    saved = settings.home / "notion-webhook-verification-token"
    refused = [
        {"verification_token": "secret_" + "x" * 600},
        {"verification_token": "secret with spaces"},
        {"verification_token": 12345},
        {"verification_token": "secret_ok", "type": "page.created"},
        {"verification_token": {"nested": "secret_ok"}},
    ]
    for body in refused:
        assert _post(port, json.dumps(body).encode()) == 400
    ten_megabytes = json.dumps({"verification_token": "secret_" + "x" * 10 * MIB}).encode()
    head = _head(f"Content-Length: {len(ten_megabytes)}")
    assert _status(_exchange(port, head + ten_megabytes[:1024])) == 413
    assert not saved.exists()

    assert _post(port, json.dumps({"verification_token": "secret_from_notion"}).encode()) == 200
    assert saved.read_text() == "secret_from_notion"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert "secret_from_notion" not in server_log.text

    assert _post(port, json.dumps({"verification_token": "secret_from_later"}).encode()) == 401
    assert saved.read_text() == "secret_from_notion"
    event = _event("not-ours")
    assert _post(port, event, sign("secret_from_notion", event)) == 401
    _no_tracebacks(server_log)


def _register_pages(store: Store, project: VideoProject, pages: list[str]) -> None:
    for page in pages:
        register_project(
            store,
            project.model_copy(update={"project_id": f"p-{page}", "notion_page_id": page}),
            None,
        )


def test_events_for_pages_that_are_not_ours_are_ignored_without_notion(
    start_receiver: StartReceiver, settings: Settings
) -> None:
    """A signed event for a page that is no project of ours gets 200 at once, unremembered."""
    port = start_receiver()
    event_id = str(uuid.uuid4())
    event = _event("some-other-page", event_id)
    started = time.monotonic()
    assert _post(port, event, sign(SECRET, event)) == 200
    assert time.monotonic() - started < 0.5
    assert build_store(settings).remember_webhook_event(event_id)


def test_failed_events_are_answered_again_and_pages_do_not_wait_for_each_other(
    start_receiver: StartReceiver, settings: Settings, project: VideoProject
) -> None:
    """With Notion timing out, events for three pages fail in parallel, and each retry is tried."""
    pages = ["page-a", "page-b", "page-c"]
    _register_pages(build_store(settings), project, pages)
    with seeded_notion() as notion:
        notion.fake.inject_faults(rate=1.0, kinds=("timeout",), delay_s=1.5)
        port = start_receiver(notion=notion.config.model_copy(update={"max_attempts": 1}))
        events = {page: _event(page) for page in pages}

        def deliver(page: str) -> tuple[int, float]:
            started = time.monotonic()
            status = _post(port, events[page], sign(SECRET, events[page]))
            return status, time.monotonic() - started

        alone_status, alone_s = deliver("page-a")
        assert alone_status == 500
        with ThreadPoolExecutor(3) as pool:
            together = list(pool.map(deliver, pages))
    assert alone_s >= 0.9
    assert [status for status, _ in together] == [500, 500, 500]
    assert min(seconds for _, seconds in together) >= 0.9
    assert max(seconds for _, seconds in together) < 2 * alone_s
