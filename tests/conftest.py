"""Shared fixtures: settings in a temporary data dir, and the app served on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ragbridge.app import create_app
from ragbridge.settings import Settings
from tests.support.postgres import PostgresForTests, running_postgres
from tests.support.redis import RedisForTests, running_redis
from tests.support.server import serve_in_thread
from tests.support.upstream import ScriptedUpstream, gateway_settings


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's RAGBRIDGE_* variables or `.env`."""
    for name in list(os.environ):
        if name.startswith("RAGBRIDGE_") and name != "RAGBRIDGE_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def anyio_backend() -> str:
    """`pytest.mark.anyio` tests run on asyncio (not also on trio)."""
    return "asyncio"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a fresh data dir and no sample collection, plus any overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "sample_collection": False,
            "warm_start": False,  # tests/integration/test_warm_start.py covers it
            "database_url": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def serve_app() -> Callable[[Settings], AbstractContextManager[str]]:
    """`with serve_app(settings) as base_url:` runs ragbridge under uvicorn on loopback."""

    def serve(settings: Settings) -> AbstractContextManager[str]:
        return serve_in_thread(create_app(settings))

    return serve


@pytest.fixture
def serve(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> Callable[..., AbstractContextManager[str]]:
    """`with serve(**overrides) as url:` ragbridge in front of the scripted upstream."""
    return lambda **overrides: serve_app(make_settings(**gateway_settings(upstream, **overrides)))


@pytest.fixture
def app_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """ragbridge with default test settings (no upstream), served on loopback."""
    with serve_in_thread(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresForTests]:
    """PostgreSQL + pgvector for the session: RAGBRIDGE_DATABASE_URL if set, else pgserver's."""
    with running_postgres(os.environ.get("RAGBRIDGE_DATABASE_URL")) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """A postgresql:// URL on a fresh, empty schema, dropped after the test."""
    with postgres_server.fresh_schema() as url:
        yield url


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    """A scripted OpenAI-compatible LLM on loopback: `.url` (…/v1), `.requests`, `.script(...)`."""
    with ScriptedUpstream().serve() as server:
        yield server


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedUpstream]:
    """The scripted upstream shared by a module's tests (for module-scoped ragbridge servers)."""
    with ScriptedUpstream().serve() as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisForTests]:
    """A real redis-server on a free loopback port (no persistence); `.stop()`/`.start()`."""
    with running_redis(tmp_path / "redis") as server:
        yield server
