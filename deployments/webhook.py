"""`clipgate webhook`: a receiver for Notion's page events that resumes waiting runs at once.

It answers through the same logic as the poll (which stays as reconciliation): the event
only says which page changed; the page itself is read to learn the reviewer's answer.
"""

from __future__ import annotations

import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clipgate.errors import ClipgateError, ConfigurationError
from clipgate.notion.poll import answer_for_page
from clipgate.notion.sync import review_surface
from clipgate.notion.webhook import Handshake, PageEvent, parse_delivery, signature_matches
from clipgate.settings import Settings
from clipgate.wiring import build_store
from flows.resume import answer_review

logger = logging.getLogger(__name__)


class WebhookReceiver(ThreadingHTTPServer):
    """An HTTP server on (host, port) that takes Notion webhook deliveries."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8787) -> None:
        if settings.notion is None:
            raise ConfigurationError(
                "the webhook needs Notion: set CLIPGATE_NOTION__* or CLIPGATE_NOTION_BLOCK"
            )
        self.settings = settings
        self.lock = threading.Lock()
        super().__init__((host, port), _DeliveryHandler)

    def take(self, body: bytes, signature: str | None) -> int:
        """Handle one delivery; the HTTP status to answer."""
        delivery = parse_delivery(body)
        token = self.settings.notion_webhook_token
        if isinstance(delivery, Handshake):
            self._keep_verification_token(delivery.verification_token)
            return 200
        if token is None or not signature_matches(token.get_secret_value(), body, signature):
            return 401
        if isinstance(delivery, PageEvent):
            self._answer(delivery)
        return 200

    def _keep_verification_token(self, verification_token: str) -> None:
        # Written where only this user can read it, never logged: it signs every delivery.
        target = self.settings.home / "notion-webhook-verification-token"
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as output:
            output.write(verification_token)
        logger.warning(
            "Notion sent the webhook verification token; it is in %s. Paste it into the "
            "subscription in Notion and set CLIPGATE_NOTION_WEBHOOK_TOKEN to it.",
            target,
        )

    def _answer(self, event: PageEvent) -> None:
        store = build_store(self.settings)
        assert self.settings.notion is not None
        # Deliveries for one page are handled one at a time, and a redelivery is seen once.
        with self.lock:
            if not store.remember_webhook_event(event.event_id):
                return
            answer = answer_for_page(
                review_surface(self.settings.notion),
                store,
                event.page_id,
                frozenset(self.settings.regenerate_on_error),
                event.author_ids[0] if event.author_ids else "",
            )
            if answer is not None and not answer_review(answer.flow_run_id, answer.answer):
                logger.info(
                    "run %s is not waiting yet; the poll will answer it", answer.flow_run_id
                )


class _DeliveryHandler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status = self.server.take(body, self.headers.get("X-Notion-Signature"))
        except ClipgateError as error:
            logger.warning("webhook delivery refused: %s", error)
            status = 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        logger.debug(format, *args)


def receive_forever(settings: Settings, host: str, port: int) -> None:
    """Serve the receiver until interrupted."""
    with WebhookReceiver(settings, host, port) as receiver:
        logger.warning("receiving Notion webhooks on http://%s:%d/", host, port)
        receiver.serve_forever()
