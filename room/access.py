"""Who may use the room: loopback by default, a token off loopback, origin and CSRF checks.

- Bound to a loopback address the room needs nothing; bound to any other address it
  refuses to start without `CLIPGATE_ROOM_TOKEN`.
- With a token set, every request needs it: `?token=` once (answered with a cookie and a
  redirect that drops it from the address bar), then the cookie; or a bearer header.
- Every state-changing request must come from the room's own origin and carry the CSRF
  token the room's pages hold.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from clipgate.errors import ConfigurationError
from clipgate.settings import Settings

COOKIE = "clipgate_room"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings, host: str) -> None:
    """Refuse to listen off loopback without a token."""
    if not is_loopback(host) and settings.room_token is None:
        raise ConfigurationError(
            f"the review room would listen on {host}, which other machines can reach, "
            "without a token: set CLIPGATE_ROOM_TOKEN to a long random secret, or listen "
            "on 127.0.0.1"
        )


class Access:
    """The room's checks, built once per app."""

    def __init__(self, settings: Settings) -> None:
        self.token = settings.room_token.get_secret_value() if settings.room_token else None
        # The cookie holds a digest of the token, so a leaked cookie jar does not leak it.
        self.cookie_value = (
            hashlib.sha256(f"clipgate-room:{self.token}".encode()).hexdigest()
            if self.token
            else None
        )
        self.csrf_token = secrets.token_urlsafe(32)
        self.secure_cookie = settings.room_url.startswith("https://")
        self.public_origin = _origin(settings.room_url)

    def refusal(self, request: Request) -> Response | None:
        """A response refusing the request, a redirect that sets the cookie, or None to go on."""
        if self.token is not None:
            offered = request.query_params.get("token")
            if offered is not None and _same(offered, self.token):
                return self._with_cookie(request)
            if not self._has_token(request):
                return PlainTextResponse(
                    "This review room needs its token: open the link you were given, which "
                    "ends in ?token=...",
                    status_code=401,
                )
        if request.method not in SAFE_METHODS:
            return self._cross_site_refusal(request)
        return None

    def _has_token(self, request: Request) -> bool:
        assert self.token is not None
        assert self.cookie_value is not None
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and _same(cookie, self.cookie_value):
            return True
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(bearer, self.token)

    def _with_cookie(self, request: Request) -> Response:
        assert self.cookie_value is not None
        kept = [(name, value) for name, value in request.query_params.multi_items()]
        query = urlencode([(name, value) for name, value in kept if name != "token"])
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), 303)
        response.set_cookie(
            COOKIE,
            self.cookie_value,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            max_age=30 * 24 * 3600,
        )
        return response

    def _cross_site_refusal(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin is None or origin not in {own, self.public_origin}:
            return PlainTextResponse(
                "refused: this request did not come from a page of the review room "
                f"(origin {origin or 'missing'})",
                status_code=403,
            )
        offered = request.headers.get(CSRF_HEADER, "")
        if not _same(offered, self.csrf_token):
            return PlainTextResponse(
                "refused: the CSRF token is missing or stale; reload the page and try again",
                status_code=403,
            )
        return None


def _same(offered: str, expected: str) -> bool:
    return secrets.compare_digest(offered.encode(), expected.encode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
