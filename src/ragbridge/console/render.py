"""Jinja2 rendering for the console: the per-request context, filters, term highlighting."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from ragbridge import __version__
from ragbridge.api.deps import get_ragbridge
from ragbridge.api.security import Principal
from ragbridge.bridge import Ragbridge
from ragbridge.console.i18n import Translator, pick_language
from ragbridge.console.session import ConsoleRefused, Session, auth_on, resolve, set_cookie
from ragbridge.retrieval.analyzer import Analyzer

TEMPLATES = Path(__file__).parent / "templates"
_WORD = re.compile(r"(\w+)")


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _bytes(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["bytes"] = _bytes
    env.globals["version"] = __version__
    return env


@dataclass(frozen=True)
class Ctx:
    """What every page knows: the request, its session, the caller and the language."""

    request: Request
    session: Session
    principal: Principal
    t: Translator

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def bridge(self) -> Ragbridge:
        """The app's Python API, which every page goes through."""
        return get_ragbridge(self.request)

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, ctx=self, status=status, **values)


async def context(request: Request, *, admin: bool = False) -> Ctx:
    """Resolve the session and principal (raising `LoginRequired` / `ConsoleRefused`, which
    is a 403 for a page that takes the `admin` key)."""
    session, principal = await resolve(request)
    if admin and not principal.is_admin:
        raise ConsoleRefused(403, "forbidden")
    return Ctx(request, session, principal, Translator(pick_language(request)))


def render(
    request: Request,
    template: str,
    *,
    ctx: Ctx | None = None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page (or an htmx fragment) rendered in the request's language."""
    t = ctx.t if ctx is not None else Translator(pick_language(request))
    html = (
        environment()
        .get_template(template)
        .render(
            t=t,
            lang=t.language,
            ctx=ctx,
            csrf=ctx.session.csrf if ctx else "",
            auth_on=auth_on(request),
            path=request.url.path,
            **values,
        )
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    new_session = getattr(request.state, "console_new_session", None)
    if isinstance(new_session, Session):
        set_cookie(request, response, new_session)
    return response


def chosen(value: str | None, options: list[str]) -> str | None:
    """`value` if it is one of `options`, else the first option (None when there is none)."""
    return value if value in options else (options[0] if options else None)


def highlight(text: str, terms: frozenset[str], analyzer: Analyzer) -> Markup:
    """`text` escaped, with every word whose analysed terms meet `terms` in `<mark>`: "회사의"
    for a query about "회사는" (both the morpheme "회사"), "vaccines" for "vaccine"."""
    if not terms:
        return escape(text)
    out: list[str] = []
    for index, part in enumerate(_WORD.split(text)):  # the words are at the odd indexes
        marked = index % 2 and terms.intersection(_terms_of(analyzer, part))
        out.append(f"<mark>{escape(part)}</mark>" if marked else str(escape(part)))
    return Markup("".join(out))


@functools.lru_cache(maxsize=65536)
def _terms_of(analyzer: Analyzer, word: str) -> tuple[str, ...]:
    return tuple(analyzer.analyze(word))
