"""`ragbridge keys create/list/revoke` end to end, against a served app on the same data dir."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ragbridge.cli import app
from ragbridge.service.api_keys import hash_key
from ragbridge.settings import Settings

ADMIN_KEY = "cli-admin-key"


@pytest.fixture
def keys_cli(tmp_path: Path) -> Callable[..., str]:
    """Run `ragbridge keys ...` on the data dir the served app uses; returns stdout."""
    runner = CliRunner()
    env = {"RAGBRIDGE_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str, exit_code: int = 0) -> str:
        result = runner.invoke(app, ["keys", *args], env=env)
        assert result.exit_code == exit_code, result.output
        return result.output

    return run


def test_create_list_revoke_against_a_served_app(
    keys_cli: Callable[..., str],
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    created = keys_cli("create", "--name", "team-a", "--collections", "handbook,faq", "--rpm", "60")
    key = created.strip().splitlines()[-1]
    assert key.startswith("rb-") and len(key) == 46  # alone on the last line
    assert created.count(key) == 1 and "handbook, faq" in created

    listing = keys_cli("list")
    assert "team-a" in listing and "handbook,faq" in listing and "active" in listing
    assert key not in listing and hash_key(key) not in listing

    with serve_app(make_settings(api_key=ADMIN_KEY)) as url:
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
        keys_cli("revoke", "team-a")
        assert httpx.get(url + "/v1/models", headers=auth).status_code == 401
    assert "revoked" in keys_cli("list")


def test_cli_errors_are_one_clear_line(keys_cli: Callable[..., str]) -> None:
    assert "No API keys" in keys_cli("list")
    keys_cli("create", "--name", "dup")
    assert "dup" in keys_cli("create", "--name", "dup", exit_code=1)
    assert "admin" in keys_cli("create", "--name", "admin", exit_code=1)
    assert "rpm" in keys_cli("create", "--name", "zero", "--rpm", "0", exit_code=1)
    assert "nobody" in keys_cli("revoke", "nobody", exit_code=1)
