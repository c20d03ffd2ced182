"""Console pages around the data: login, language, API keys (admin) and status."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import SecretStr

from ragbridge.api.deps import get_metrics, get_settings
from ragbridge.api.ops import READY_PROBE_TIMEOUT, _store_check, _upstream_check
from ragbridge.console.i18n import LANG_COOKIE, LANGUAGES
from ragbridge.console.metrics_view import traffic
from ragbridge.console.pages import visible_collections
from ragbridge.console.render import Ctx, context, render
from ragbridge.console.session import (
    COOKIE,
    ConsoleRefused,
    auth_on,
    authenticate,
    check_csrf,
    check_host,
    check_same_origin,
    sessions_of,
    set_cookie,
)
from ragbridge.embeddings.base import Embedder
from ragbridge.errors import RagbridgeError, Unauthorized
from ragbridge.service.api_keys import NewKey

router = APIRouter(include_in_schema=False)


def _local_path(target: str | None) -> str:
    """`target` if it is a path on this server, else `/` (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/lang/{language}")
async def switch_language(request: Request, language: str, next: str = "/") -> Response:
    response = RedirectResponse(_local_path(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, samesite="strict")
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "/", failed: bool = False) -> Response:
    check_host(request)
    if not auth_on(request):
        return RedirectResponse("/", status_code=303)
    sessions = sessions_of(request)
    pending = sessions.get(request.cookies.get(COOKIE))
    if pending is None or pending.token is not None:
        pending = sessions.new(None)  # carries the login form's CSRF token only
    response = render(
        request,
        "login.html",
        csrf_token=pending.csrf,
        next=_local_path(next),
        failed=failed,
        status=401 if failed else 200,
    )
    set_cookie(request, response, pending)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key as an API request would; on success a fresh session id (no fixation)."""
    check_host(request)
    check_same_origin(request)
    sessions = sessions_of(request)
    pending = sessions.get(request.cookies.get(COOKIE))
    if pending is None:
        raise ConsoleRefused(403, "csrf")
    await check_csrf(request, pending)
    form = await request.form()
    key = str(form.get("key", "")).strip()
    target = _local_path(str(form.get("next", "/")))
    try:
        await authenticate(request, key)
    except Unauthorized:
        return RedirectResponse(f"/login?failed=1&next={quote(target)}", status_code=303)
    sessions.drop(pending.id)
    session = sessions.new(key)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, session)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx = await context(request)
    sessions_of(request).drop(ctx.session.id)
    response = RedirectResponse("/login" if auth_on(request) else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- keys ------------------------------------------------------------------------------------
@router.get("/keys")
async def keys_page(request: Request) -> Response:
    return await _keys(await context(request, admin=True))


async def _keys(
    ctx: Ctx, *, created: NewKey | None = None, error: str | None = None, status: int = 200
) -> Response:
    records = sorted(await ctx.bridge.keys(), key=lambda r: (r.revoked, -r.created_at))
    names = [c.name for c in await visible_collections(ctx)]
    return ctx.render(
        "keys.html", status=status, records=records, names=names, created=created, error=error
    )


@router.post("/keys")
async def create(request: Request) -> Response:
    ctx = await context(request, admin=True)
    form = await request.form()
    scopes = [str(v) for v in form.getlist("collections")]
    try:
        new = await ctx.bridge.create_key(
            str(form.get("name", "")).strip(),
            collections=scopes or None,
            rpm=_int_or_none(form.get("rpm")),
            tpm=_int_or_none(form.get("tpm")),
        )
    except RagbridgeError as exc:
        return await _keys(ctx, error=exc.message, status=exc.status)
    return await _keys(ctx, created=new, status=201)


def _int_or_none(value: Any) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return -1  # create_key says what a limit must be


@router.get("/keys/{name}/revoke")
async def confirm_revoke(request: Request, name: str) -> Response:
    ctx = await context(request, admin=True)
    return ctx.render(
        "confirm.html", what=name, detail_key="confirm_key", back="/keys", verb="revoke"
    )


@router.post("/keys/{name}/revoke")
async def revoke(request: Request, name: str) -> Response:
    ctx = await context(request, admin=True)
    if not await ctx.bridge.revoke_key(name):
        raise ConsoleRefused(404, "not_found")
    return RedirectResponse("/keys", status_code=303)


# --- status ----------------------------------------------------------------------------------
async def _embedder_check(embedder: Embedder) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(embedder.embed_query("ping"), READY_PROBE_TIMEOUT)
    except Exception as exc:  # any failure is the embedder's state, shown as such
        return {"status": "error", "model": embedder.name, "detail": str(exc) or type(exc).__name__}
    latency = round((time.perf_counter() - started) * 1000, 1)
    return {"status": "ok", "model": embedder.name, "latency_ms": latency}


def _redis_check(request: Request) -> dict[str, Any]:
    if not get_settings(request).redis_url:
        return {"status": "not_configured"}
    (family,) = get_metrics(request).redis_up.collect()
    components = {sample.labels["component"]: sample.value for sample in family.samples}
    degraded = [name for name, up in components.items() if not up]
    return {"status": "error" if degraded else "ok", "components": components}


def _masked(name: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return "••••••"
    if value is None:
        return ""
    text = str(value)
    if name.endswith("_url") and "@" in text:  # passwords in database or Redis URLs
        parts = urlsplit(text)
        host = parts.netloc.rsplit("@", 1)[1]
        user = (parts.username or "") + ":••••••@" if parts.password else "••••••@"
        return urlunsplit(parts._replace(netloc=user + host))
    return text


@router.get("/status")
async def status_page(request: Request) -> Response:
    ctx = await context(request)
    bridge, settings = ctx.bridge, get_settings(request)
    checks = {
        "store": await _store_check(bridge.store),
        "embedder": await _embedder_check(bridge.embedder),
        "upstream": await _upstream_check(bridge.upstream),
        "redis": _redis_check(request),
    }
    names = type(settings).model_fields if ctx.is_admin else {}  # settings for the admin only
    shown = {name: _masked(name, getattr(settings, name)) for name in names}
    traffic_now = traffic(get_metrics(request))
    return ctx.render("status.html", checks=checks, traffic=traffic_now, settings=shown)
