"""`clipgate webhook`: a receiver for Notion's page events that resumes waiting runs at once.

It answers through the same logic as the poll (which stays as reconciliation): the event
only says which page changed; the page itself is read to learn the reviewer's answer.

Anyone on the internet can reach it, so no client can hold it: uvicorn serves at most
`max_connections` connections (503 above), a request head must arrive within the idle
timeout, a body within `body_timeout_s` (408) and within `max_body_bytes` (413, refused
from its Content-Length before any of it is read). Nothing is parsed before its signature
matched, except the one unsigned delivery, Notion's handshake, which is taken only while
no verification token is configured or saved, and never replaces one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import h11
import uvicorn
from pydantic import SecretStr
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from clipgate.errors import ClipgateError, ConfigurationError, InputError
from clipgate.notion.gateway import NotionConfig
from clipgate.notion.poll import ReviewAnswer, answer_for_page
from clipgate.notion.surface import NotionReviewSurface
from clipgate.notion.sync import review_surface
from clipgate.notion.webhook import PageEvent, parse_event, parse_handshake, signature_matches
from clipgate.settings import Settings
from clipgate.wiring import build_store
from prefect_glue.answers import answer_review

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverLimits:
    """What one client may take of the receiver; Notion's deliveries are small and quick."""

    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    idle_timeout_s: int = 5
    max_connections: int = 64
    max_head_bytes: int = 16 * 1024


def hand_answer_to_run(answer: ReviewAnswer) -> None:
    """Give a reviewer's answer to its waiting run: the one place the webhook does so."""
    if not answer_review(answer.flow_run_id, answer.answer):
        logger.info("run %s is not waiting yet; the poll will answer it", answer.flow_run_id)


class WebhookReceiver:
    """Notion webhook deliveries on (host, port), served by uvicorn from `serve_forever`."""

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 8787,
        limits: ReceiverLimits | None = None,
    ) -> None:
        if settings.notion is None:
            raise ConfigurationError(
                "the webhook needs Notion: set CLIPGATE_NOTION__* or CLIPGATE_NOTION_BLOCK"
            )
        limits = limits or ReceiverLimits()
        page_events = _PageEvents(settings, settings.notion)
        # Bound here rather than by uvicorn, so that a port of 0 has its number at once.
        self.socket = socket.create_server((host, port))
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            _DeliveryApp(settings, limits, page_events),
            http=_RequestHeadDeadline,
            ws="none",
            lifespan="off",
            loop="asyncio",
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=limits.idle_timeout_s,
            timeout_graceful_shutdown=math.ceil(limits.body_timeout_s),
            h11_max_incomplete_event_size=limits.max_head_bytes,
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_config=None,
        )
        self._server = uvicorn.Server(config)
        self._serving = threading.Event()
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        """Serve until `shutdown` (or, in the main thread, SIGINT/SIGTERM)."""
        self._serving.set()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving, and wait for `serve_forever` to return if it is running."""
        self._server.should_exit = True
        if self._serving.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        """Release the listening socket."""
        self.socket.close()


def receive_forever(settings: Settings, host: str, port: int) -> None:
    """Serve the receiver until interrupted."""
    receiver = WebhookReceiver(settings, host, port)
    logger.warning("receiving Notion webhooks on http://%s:%d/", host, port)
    try:
        receiver.serve_forever()
    finally:
        receiver.server_close()


class _RequestHeadDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing connections whose request head is too slow.

    uvicorn times out idle connections only between requests: without this, a client that
    connects and sends nothing, or a header a byte at a time, keeps its connection (and a
    place under `limit_concurrency`) forever.
    """

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_request_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_request_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _watch_request_head(self) -> None:
        awaiting_head = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if awaiting_head and self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_keep_alive, self.transport.close)
        elif not awaiting_head and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


class _DeliveryApp:
    """The ASGI app: what each delivery gets back, decided before anything slow is done."""

    def __init__(
        self, settings: Settings, limits: ReceiverLimits, page_events: _PageEvents
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.saved_token = settings.home / "notion-webhook-verification-token"
        self.page_events = page_events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        status = await self._status_for(request)
        # A refused client gets no further request on this connection, nor its body read.
        headers = None if status == 200 else {"connection": "close"}
        await Response(status_code=status, headers=headers)(scope, receive, send)

    async def _status_for(self, request: Request) -> int:
        if request.method != "POST":
            return 405
        # h11 has already answered 400 to a Content-Length that is not a number.
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > self.limits.max_body_bytes:
            return 413
        signature = request.headers.get("x-notion-signature")
        token = self.settings.notion_webhook_token
        if signature is None and (token is not None or self.saved_token.exists()):
            return 401
        if signature is not None and token is None:
            return 401
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await _read_at_most(request, self.limits.max_body_bytes + 1)
        except TimeoutError:
            return 408
        except ClientDisconnect:
            return 400
        if len(body) > self.limits.max_body_bytes:
            return 413
        if signature is not None and token is not None:
            return await self._take_signed(body, signature, token)
        return self._take_handshake(body)

    def _take_handshake(self, body: bytes) -> int:
        try:
            handshake = parse_handshake(body)
        except InputError as error:
            logger.warning("unsigned webhook delivery refused: %s", error)
            return 400
        if not _keep_verification_token(self.saved_token, handshake.verification_token):
            return 401
        return 200

    async def _take_signed(self, body: bytes, signature: str, token: SecretStr) -> int:
        if not signature_matches(token.get_secret_value(), body, signature):
            return 401
        try:
            event = parse_event(body)
        except InputError as error:
            logger.warning("webhook delivery refused: %s", error)
            return 400
        if event is None:
            return 200
        return await self.page_events.take(event)


class _PageEvents:
    """Signed page events answered for our pages, one at a time per page, each once."""

    def __init__(self, settings: Settings, notion: NotionConfig) -> None:
        self.notion = notion
        self.store = build_store(settings)
        self.regenerate_at_once = frozenset(settings.regenerate_on_error)
        self._surface: NotionReviewSurface | None = None
        self._page_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def take(self, event: PageEvent) -> int:
        """The status for a page event, once it is answered (500 if that failed)."""
        if await asyncio.to_thread(self.store.project_by_notion_page, event.page_id) is None:
            return 200
        # Only events for the same page wait for each other, never for another page's.
        lock = self._page_locks.setdefault(event.page_id, asyncio.Lock())
        async with lock:
            try:
                await asyncio.to_thread(self._answer_once, event)
            except ClipgateError as error:
                logger.warning(
                    "webhook event %s failed; Notion will deliver it again: %s",
                    event.event_id,
                    error,
                )
                return 500
        return 200

    def _answer_once(self, event: PageEvent) -> None:
        # Remembered before answering, so that a redelivery is answered once; forgotten if
        # answering fails, so that Notion's retry is answered.
        if not self.store.remember_webhook_event(event.event_id):
            return
        try:
            answer = answer_for_page(
                self._review_surface(),
                self.store,
                event.page_id,
                self.regenerate_at_once,
                event.author_ids[0] if event.author_ids else "",
            )
            if answer is not None:
                hand_answer_to_run(answer)
        except BaseException:
            self.store.forget_webhook_event(event.event_id)
            raise

    def _review_surface(self) -> NotionReviewSurface:
        # Connecting checks the databases (several Notion requests): once per receiver.
        if self._surface is None:
            self._surface = review_surface(self.notion)
        return self._surface


async def _read_at_most(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body)


def _keep_verification_token(target: Path, verification_token: str) -> bool:
    # Written where only this user can read it, never logged: it signs every delivery. A
    # token already saved is kept: replacing it would let anyone re-key the receiver.
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as output:
        output.write(verification_token)
    logger.warning(
        "Notion sent the webhook verification token; it is in %s. Paste it into the "
        "subscription in Notion and set CLIPGATE_NOTION_WEBHOOK_TOKEN to it.",
        target,
    )
    return True
