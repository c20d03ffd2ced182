"""Who is calling, what they may touch, how fast: `require_principal` resolves the Bearer key to a
`Principal` and checks input and rate limits once. A scoped key gets other collections' 404, as for
missing ones; with no admin key auth is off (loopback only: `check_bind_safety`)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from ragbridge.api.deps import get_metrics, get_rate_limiter, get_settings, get_store
from ragbridge.errors import (
    Forbidden,
    InvalidRequest,
    RateLimited,
    Unauthorized,
    collection_not_found,
)
from ragbridge.rag import parse_rag_model, unknown_model
from ragbridge.service.api_keys import ADMIN, ANONYMOUS, KEY_PREFIX, hash_key
from ragbridge.service.rate_limits import Limits
from ragbridge.settings import Settings
from ragbridge.text.tokens import estimate_tokens, prompt_text

_USER_TEXT_CHARS = 2000

_bearer = HTTPBearer(auto_error=False, description="An API key: admin or from `ragbridge keys`.")


@dataclass(frozen=True)
class Principal:
    """The caller behind a request: the key's name, its rights and its limits."""

    name: str
    is_admin: bool = False
    collections: frozenset[str] | None = None  # None = every collection
    limits: Limits = field(default_factory=Limits)

    def can_access(self, collection: str) -> bool:
        """Whether this key may see and use `collection`."""
        return self.collections is None or collection in self.collections


class UnsafeBindError(RuntimeError):
    """Serving without an admin key on an address other machines can reach."""


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "": could be anything, assume reachable


def check_bind_safety(settings: Settings) -> None:
    """Refuse to serve with auth off on a non-loopback address."""
    if settings.api_key is None and not is_loopback(settings.host):
        raise UnsafeBindError(
            f"Refusing to serve on {settings.host} without an API key: anyone who can reach it "
            "could read your documents and spend your LLM budget. Set RAGBRIDGE_API_KEY (the "
            "admin key; `ragbridge keys create` makes keys for users), or bind to 127.0.0.1."
        )


def bearer_token(request: Request) -> str | None:
    """The `Authorization: Bearer` token of a request, if it sent one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def matches(token: str | None, secret: SecretStr | None) -> bool:
    """Whether `token` is `secret` (constant-time); False when either is missing."""
    if token is None or secret is None:
        return False
    return secrets.compare_digest(token.encode(), secret.get_secret_value().encode())


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    settings = get_settings(request)
    if settings.api_key is None:
        return Principal(ANONYMOUS, is_admin=True)
    token = credentials.credentials if credentials else None
    if not token:
        raise Unauthorized(
            "Missing API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if matches(token, settings.api_key):
        return Principal(ADMIN, is_admin=True)
    # A hash lookup needs no constant-time compare: timing could only reveal hash prefixes,
    # and finding a key with a given hash prefix is as hard as guessing the key.
    store = get_store(request)
    record = await store.find_api_key(hash_key(token)) if token.startswith(KEY_PREFIX) else None
    if record is None or record.revoked:
        raise Unauthorized(
            "Invalid API key.", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
    scope = frozenset(record.collections) if record.collections is not None else None
    return Principal(record.name, False, scope, Limits(rpm=record.rpm, tpm=record.tpm))


async def _json_payload(request: Request) -> Mapping[str, Any] | None:
    """The JSON body as FastAPI parsed it (Starlette caches it), or None."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if request.method not in ("POST", "PUT", "PATCH") or not is_json:
        return None
    try:
        payload = await request.json()
    except ValueError:
        return None  # FastAPI answers with its own 400
    return payload if isinstance(payload, Mapping) else None


def _last_user_text(payload: Mapping[str, Any]) -> str:
    messages = payload.get("messages")
    for message in reversed(messages) if isinstance(messages, list) else ():
        if isinstance(message, Mapping) and message.get("role") == "user":
            return prompt_text({"messages": [message]})
    return prompt_text(payload)


async def _inspect(request: Request, settings: Settings) -> int:
    """Note model and (if configured) user text for the log, check input limits (the one place,
    before the key is charged); the prompt's token estimate, the one a chat turn uses."""
    payload = await _json_payload(request)
    if payload is None:
        return 0
    if isinstance(payload.get("model"), str):
        request.state.model = payload["model"]
    messages = payload.get("messages")
    if isinstance(messages, list) and len(messages) > settings.max_messages:
        raise InvalidRequest(
            f"Too many messages: {len(messages)}; at most {settings.max_messages} "
            "(RAGBRIDGE_MAX_MESSAGES).",
            param="messages",
            code="too_many_messages",
        )
    if settings.log_user_text:
        request.state.user_text = _last_user_text(payload)[:_USER_TEXT_CHARS]
    return estimate_tokens(prompt_text(payload))


async def require_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """The authenticated caller, within its input and rate limits; also on `request.state`."""
    principal = request.state.principal = await _authenticate(request, credentials)
    tokens = request.state.prompt_estimate = await _inspect(request, get_settings(request))
    return await _charge(request, principal, tokens)


async def authorize_bearer(request: Request) -> Principal:
    """`require_principal` for a request whose body must stay unread (the MCP endpoint reads
    it itself): the key and its request rate limit, no input limits. Also on `request.state`."""
    principal = request.state.principal = await _authenticate(request, await _bearer(request))
    return await _charge(request, principal, 0)


async def _charge(request: Request, principal: Principal, tokens: int) -> Principal:
    """Count the request (and `tokens`) against the key's rate limits; `RateLimited` if over."""
    if principal.limits.unlimited:
        return principal
    decision = await get_rate_limiter(request).acquire(principal.name, principal.limits, tokens)
    if not decision.allowed:
        get_metrics(request).count_rate_limited(principal.name, decision.limit or "requests")
        per_minute = "requests" if decision.limit == "requests" else "tokens"
        raise RateLimited(
            f"Rate limit reached for key '{principal.name}' ({per_minute} per minute). "
            f"Retry in {decision.retry_after_header} s.",
            code=f"{per_minute}_rate_limit_exceeded",
            headers={"Retry-After": decision.retry_after_header},
        )
    request.state.reserved_tokens = tokens  # charged already; usage.record_usage charges the rest
    return principal


async def require_admin(principal: Principal = Depends(require_principal)) -> Principal:
    """Only the admin key (or anyone, when auth is off) may change collections and keys."""
    if not principal.is_admin:
        raise Forbidden(
            "This API key may not create or delete collections, documents or keys; "
            "that takes the admin key.",
            code="admin_required",
        )
    return principal


def ensure_collection_access(principal: Principal, collection: str) -> None:
    """Raise the collection's not-found error if `principal` may not use it."""
    if not principal.can_access(collection):
        raise collection_not_found(collection)


def ensure_model_access(principal: Principal, model: str) -> None:
    """Raise the model's not-found error if it answers from a collection `principal` may not use."""
    rag = parse_rag_model(model)
    if rag is not None and not principal.can_access(rag.collection):
        raise unknown_model(model)


def visible_models(
    principal: Principal, models: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The `/v1/models` entries `principal` may see: RAG models of its collections, all others."""
    return [
        m
        for m in models
        if (rag := parse_rag_model(str(m.get("id", "")))) is None
        or principal.can_access(rag.collection)
    ]


async def require_collection(
    name: str, principal: Principal = Depends(require_principal)
) -> Principal:
    """For routes with a `{name}` collection path parameter: 404 outside the key's scope."""
    ensure_collection_access(principal, name)
    return principal
