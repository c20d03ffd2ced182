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
from tests.support.server import serve_in_thread


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's RAGBRIDGE_* variables or `.env`."""
    for name in list(os.environ):
        if name.startswith("RAGBRIDGE_") and name != "RAGBRIDGE_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a fresh data dir and no sample collection, plus any overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "sample_collection": False,
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
def app_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """ragbridge with default test settings (no upstream), served on loopback."""
    with serve_in_thread(create_app(make_settings())) as url:
        yield url
