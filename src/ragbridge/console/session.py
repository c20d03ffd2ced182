"""Console sessions (a cookie id; the key and CSRF token stay in memory), re-authenticated on
every request as a `Bearer` key would be, and the host, origin and CSRF checks that still apply
with auth off (docs/console.md).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from ragbridge.api.deps import get_settings
from ragbridge.api.security import Principal, is_loopback, require_principal
from ragbridge.errors import Unauthorized

COOKIE = "rb_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_IDLE_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, scripts get 401."""


class ConsoleRefused(Exception):
    """A request the console will not serve: foreign host, cross-site post, bad CSRF token."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Session:
    """One browser's login: its key (None with auth off) and its CSRF token."""

    id: str
    token: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)


class Sessions:
    """Sessions in memory, least recently used dropped first; idle ones expire."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self, token: str | None) -> Session:
        session = Session(secrets.token_urlsafe(32), token)
        self._by_id[session.id] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > SESSION_IDLE_SECONDS:
            self.drop(session.id)
            return None
        session.seen = now
        self._by_id.move_to_end(session.id)
        return session

    def drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)


def sessions_of(request: Request) -> Sessions:
    return cast(Sessions, request.app.state.console_sessions)


def auth_on(request: Request) -> bool:
    return get_settings(request).api_key is not None


def check_host(request: Request) -> None:
    """With auth off, only loopback names may address the server (no DNS rebinding)."""
    if auth_on(request):
        return
    host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    if not is_loopback(host):
        raise ConsoleRefused(400, "foreign_host")


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request another site's page made."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ConsoleRefused(403, "cross_site")
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            raise ConsoleRefused(403, "cross_site")


async def check_csrf(request: Request, session: Session) -> None:
    """The session's CSRF token must come back in the header or the form."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent.encode(), session.csrf.encode()):
        raise ConsoleRefused(403, "csrf")


def set_cookie(request: Request, response: Response, session: Session) -> None:
    """Attach the session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


async def authenticate(request: Request, key: str | None) -> Principal:
    """`key`'s principal, found as the API's `require_principal` finds a `Bearer` key's."""
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key) if key else None
    return await require_principal(request, credentials)


async def resolve(request: Request) -> tuple[Session, Principal]:
    """The request's session and principal; checks host, origin and CSRF for changes. With
    auth off a first visit gets a fresh session (its cookie is set by the page)."""
    check_host(request)
    sessions = sessions_of(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None or (auth_on(request) and session.token is None):
        if auth_on(request):
            raise LoginRequired
        session = sessions.new(None)
        request.state.console_new_session = session
    if request.method not in _SAFE_METHODS:
        check_same_origin(request)
        await check_csrf(request, session)
    try:
        principal = await authenticate(request, session.token)
    except Unauthorized as exc:  # revoked since login
        sessions.drop(session.id)
        raise LoginRequired from exc
    return session, principal
