"""Notion webhook deliveries: the verification handshake, signatures, and the events we use.

Notion signs each delivery with HMAC-SHA256 of the raw body, keyed by the subscription's
verification token, in `X-Notion-Signature: sha256=<hex>`. The token itself arrives once,
unsigned, when the subscription is created; the operator pastes it back into Notion.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from clipgate.errors import InputError

PAGE_PROPERTIES_UPDATED = "page.properties_updated"


@dataclass(frozen=True)
class Handshake:
    """The one unsigned delivery that carries the verification token."""

    verification_token: str


@dataclass(frozen=True)
class PageEvent:
    """A signed event about one page."""

    event_id: str
    type: str
    page_id: str
    author_ids: tuple[str, ...]


def sign(token: str, body: bytes) -> str:
    """The X-Notion-Signature value Notion sends for `body`."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(token: str, body: bytes, header: str | None) -> bool:
    """True when `header` is Notion's signature of `body`; compared in constant time."""
    return header is not None and hmac.compare_digest(sign(token, body), header)


def parse_delivery(body: bytes) -> Handshake | PageEvent | None:
    """What a delivery is: the handshake, a page event, or None for events we do not use."""
    try:
        payload: dict[str, Any] = json.loads(body)
    except ValueError:
        raise InputError("the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InputError("the webhook body is not a JSON object")
    if "verification_token" in payload and "type" not in payload:
        return Handshake(str(payload["verification_token"]))
    entity = payload.get("entity") or {}
    if payload.get("type") != PAGE_PROPERTIES_UPDATED or entity.get("type") != "page":
        return None
    return PageEvent(
        event_id=str(payload.get("id", "")),
        type=str(payload["type"]),
        page_id=str(entity.get("id", "")),
        author_ids=tuple(str(author.get("id", "")) for author in payload.get("authors", [])),
    )
