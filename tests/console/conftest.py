"""Real headless Chromium (Playwright with Debian's `chromium`) against `ragbridge serve`.

The tests skip, saying why, when the `playwright` package or `/usr/bin/chromium` is missing
(install: `apt-get install chromium`, `pip install playwright`; no browser download needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import free_port
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    env.update(
        RAGBRIDGE_DATA_DIR=str(data_dir),
        RAGBRIDGE_SAMPLE_COLLECTION="false",
        OMP_WAIT_POLICY="PASSIVE",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        **settings,
    )
    return env


class Server:
    """`python -m ragbridge serve` on a free loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ragbridge", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ragbridge did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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
    server = Server(server_env(workdir / "data"), workdir / "serve.log")
    yield server
    server.stop()


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
    server = Server(env, workdir / "serve.log")
    yield server
    server.stop()


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
