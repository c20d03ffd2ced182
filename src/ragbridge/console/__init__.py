"""The web console at `/` (off with `RAGBRIDGE_CONSOLE=false`): Jinja2 and vendored htmx pages
in English and Korean that call what the `/v1` routes call; `session` has its security.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ragbridge.console import admin, pages, playground
from ragbridge.console.render import render
from ragbridge.console.session import ConsoleRefused, LoginRequired, Sessions

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/console-static"


def install_console(app: FastAPI) -> None:
    """Mount the console's routes, its static files and its two error handlers on `app`."""
    app.state.console_sessions = Sessions()
    for module in (pages, playground, admin):
        app.include_router(module.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ConsoleRefused, _refused)


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method == "GET" and not request.headers.get("hx-request"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return JSONResponse(
        {"error": {"message": "Log in again.", "type": "authentication_error"}},
        status_code=401,
        headers={"HX-Redirect": "/login"},
    )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefused)
    key = exc.reason if exc.reason in ("not_found", "forbidden") else f"refused_{exc.reason}"
    return render(request, "error.html", status=exc.status, message_key=key)
