"""Who may reach the API from a browser (docs/hardening.md): a Host allow-list (on loopback the
loopback names and bind address, against DNS rebinding) and, with auth off, no cross-site writes:
a browser's `Origin` or `Sec-Fetch-Site` tells them from scripts and SDKs, which send neither."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ragbridge.api.envelope import error_response
from ragbridge.api.security import is_loopback
from ragbridge.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CLOSE = {"Connection": "close"}  # the body is never read


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names (lower-case, no port) the API answers to; None means any."""
    if settings.allowed_hosts:
        names = {name.strip().lower().strip("[]") for name in settings.allowed_hosts}
        return None if "*" in names else frozenset(names)
    if is_loopback(settings.host):
        return frozenset({*LOOPBACK_NAMES, settings.host.lower().strip("[]")})
    return None


def host_name(host: str) -> str:
    """`Host` header value without its port, lower-case, IPv6 brackets removed."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostGuard:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)
        self.check_origin = settings.api_key is None
        self.cors = frozenset(origin.rstrip("/").lower() for origin in settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        await (self.app if refusal is None else refusal)(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The 421 or 403 answer for a request this server must not serve, else None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            message = (
                f"Host '{host[:100]}' is not served here; add it to RAGBRIDGE_ALLOWED_HOSTS if "
                "this server should answer to that name."
            )
            return error_response(message, 421, code="host_not_allowed", headers=_CLOSE)
        write = self.check_origin and scope["method"] not in _SAFE_METHODS
        if write and (reason := self._cross_site(headers, host)):
            message = (
                f"Cross-site request refused ({reason}): without an API key only this "
                "server's own pages and non-browser clients may change data. Set "
                "RAGBRIDGE_API_KEY, or list the page's origin in RAGBRIDGE_CORS_ORIGINS."
            )
            return error_response(message, 403, code="cross_site_request", headers=_CLOSE)
        return None

    def _cross_site(self, headers: Headers, host: str) -> str | None:
        """Why a browser request comes from another site, or None when it does not."""
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.strip().rstrip("/").lower()
            if origin in self.cors or "*" in self.cors:
                return None
            if origin == "null" or urlsplit(origin).netloc != host.strip().lower():
                return f"Origin {origin[:100]}"
            return None
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if fetch_site in ("cross-site", "same-site"):
            return f"Sec-Fetch-Site: {fetch_site}"
        return None
