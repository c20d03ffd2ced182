"""Real headless Chromium (Playwright with Debian's `chromium`) against `ragbridge serve`.

The tests skip, saying why, when the `playwright` package or `/usr/bin/chromium` is missing
(install: `apt-get install chromium`, `pip install playwright`; no browser download needed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess as Server  # the tests' annotations
from tests.support.server import ragbridge_env, ragbridge_serve
from tests.support.upstream import ScriptedUpstream

CHROMIUM = os.environ.get("RAGBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_KEY = "console-admin-key-for-tests"
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "console"

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError:  # pragma: no cover - reported as a skip
    sync_playwright = None


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    return ragbridge_env(data_dir, OMP_NUM_THREADS="1", **settings)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.skip("playwright is not installed: pip install playwright (uses Debian chromium)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth off (loopback), no upstream: extractive answers."""
    workdir = tmp_path_factory.mktemp("console-open")
    with ragbridge_serve(
        server_env(workdir / "data"), workdir / "serve.log", stop_timeout=20
    ) as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    scripted = ScriptedUpstream(models=("stub-alpha",))
    with scripted.serve():
        yield scripted


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedUpstream
) -> Iterator[Server]:
    """Auth on (an admin key), answers through the scripted upstream."""
    workdir = tmp_path_factory.mktemp("console-keyed")
    env = server_env(
        workdir / "data",
        RAGBRIDGE_API_KEY=ADMIN_KEY,
        RAGBRIDGE_UPSTREAM_BASE_URL=upstream.url,
        RAGBRIDGE_UPSTREAM_MODEL="stub-alpha",
        RAGBRIDGE_UPSTREAM_RETRY_BASE_DELAY="0.01",
    )
    with ragbridge_serve(env, workdir / "serve.log", stop_timeout=20) as server:
        yield server


def new_page(browser: Browser, locale: str = "en-US") -> Any:
    """A fresh browser context (own cookies) and page, small viewport for small screenshots."""
    context = browser.new_context(
        locale=locale, viewport={"width": 1100, "height": 720}, device_scale_factor=1
    )
    context.set_default_timeout(30_000)
    return context.new_page()


def screenshot(page: Any, name: str, tmp_dir: Path) -> Path:
    """Save a PNG of the page: into docs/console/ when CONSOLE_SCREENSHOTS=1, else `tmp_dir`."""
    folder = SHOTS if os.environ.get("CONSOLE_SCREENSHOTS") == "1" else tmp_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000  # something was drawn
    return path
