"""Notion webhook deliveries: the verification handshake, signatures, and the events we use.

Notion signs each delivery with HMAC-SHA256 of the raw body, keyed by the subscription's
verification token, in `X-Notion-Signature: sha256=<hex>`. The token itself arrives once,
unsigned, when the subscription is created; the operator pastes it back into Notion.

Parsing is for bodies already trusted as far as they can be: a signed body is parsed only
after its signature matched, and the unsigned handshake is small and has one exact shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from clipgate.errors import InputError

PAGE_PROPERTIES_UPDATED = "page.properties_updated"
MAX_JSON_DEPTH = 32
MAX_HANDSHAKE_BYTES = 1024
# Notion's tokens are short `secret_...` strings; anything else is not from Notion.
VERIFICATION_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,512}")

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")


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
    return header is not None and hmac.compare_digest(
        sign(token, body).encode(), header.encode(errors="replace")
    )


def parse_handshake(body: bytes) -> Handshake:
    """The handshake in an unsigned body: exactly `{"verification_token": "secret_..."}`."""
    if len(body) > MAX_HANDSHAKE_BYTES:
        raise InputError(f"an unsigned webhook body is larger than {MAX_HANDSHAKE_BYTES} bytes")
    payload = _json_object(body)
    token = payload.get("verification_token")
    if set(payload) != {"verification_token"} or not isinstance(token, str):
        raise InputError("an unsigned webhook body is not Notion's verification handshake")
    if not VERIFICATION_TOKEN_SHAPE.fullmatch(token):
        raise InputError("the webhook verification token does not look like Notion's")
    return Handshake(token)


def parse_event(body: bytes) -> PageEvent | None:
    """The page event in a signed body, or None for events we do not use."""
    payload = _json_object(body)
    entity = payload.get("entity")
    if (
        payload.get("type") != PAGE_PROPERTIES_UPDATED
        or not isinstance(entity, dict)
        or entity.get("type") != "page"
    ):
        return None
    event_id, page_id, authors = payload.get("id"), entity.get("id"), payload.get("authors", [])
    if not isinstance(event_id, str) or not event_id:
        raise InputError("the webhook event has no id")
    if not isinstance(page_id, str) or not page_id:
        raise InputError("the webhook event names no page")
    if not isinstance(authors, list) or not all(isinstance(author, dict) for author in authors):
        raise InputError("the webhook event's authors are not a list of users")
    return PageEvent(
        event_id=event_id,
        type=PAGE_PROPERTIES_UPDATED,
        page_id=page_id,
        author_ids=tuple(str(author.get("id", "")) for author in authors),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    # The decoder recurses once per level: refuse deep nesting before it gets the body.
    if _nesting_exceeds(body, MAX_JSON_DEPTH):
        raise InputError(f"the webhook body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        payload = json.loads(body)
    except ValueError:
        raise InputError("the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise InputError("the webhook body is not a JSON object")
    return payload


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False
