"""`ragbridge config` prints a `.env` that loads back; a bad setting is one plain line, for every
command. The real CLI, as a subprocess, in a folder of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_ragbridge

KOREAN_PROMPT = '발췌만 보고 답하세요 "정확히":\n{context}'


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    return run_ragbridge(*args, env={**clean, **env}, cwd=cwd, timeout=120)


def test_config_output_loads_back_as_dot_env(tmp_path: Path) -> None:
    settings = {
        "RAGBRIDGE_PORT": "8123",
        "RAGBRIDGE_LOG_JSON": "true",
        "RAGBRIDGE_API_KEY": "secret-admin-key",
        "RAGBRIDGE_UPSTREAM_API_KEY": "secret-upstream-key",
        "RAGBRIDGE_CORS_ORIGINS": '["https://chat.example.com"]',
        "RAGBRIDGE_UPSTREAM_HEADERS": '{"X-User-Id": "{request.header.X-OpenWebUI-User-Id}"}',
        "RAGBRIDGE_PROMPT_TEMPLATE": KOREAN_PROMPT,
        "RAGBRIDGE_DATA_DIR": str(tmp_path / "data dir"),
    }
    shown = cli(tmp_path, "config", **settings)
    assert shown.returncode == 0, shown.stderr
    assert "secret-" not in shown.stdout  # secrets are left out by default
    assert "=None" not in shown.stdout and "RAGBRIDGE_UPSTREAM_BASE_URL" not in shown.stdout
    assert "RAGBRIDGE_LOG_JSON=true" in shown.stdout.splitlines()

    full = cli(tmp_path, "config", "--show-secrets", **settings)
    assert "RAGBRIDGE_API_KEY=secret-admin-key" in full.stdout.splitlines()
    (tmp_path / ".env").write_text(full.stdout, encoding="utf-8")
    again = cli(tmp_path, "config", "--show-secrets")  # from the .env alone
    assert again.returncode == 0, again.stderr
    assert again.stdout == full.stdout

    (tmp_path / ".env").write_text(shown.stdout, encoding="utf-8")  # without secrets: also loads
    listed = cli(tmp_path, "collections", "list")
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected", "where", "command"),
    [
        ("RAGBRIDGE_PORT", "abc", "expected a whole number", "environment", ["serve"]),
        ("RAGBRIDGE_LOG_JSON", "None", "expected true or false", ".env", ["config"]),
        ("RAGBRIDGE_CORS_ORIGINS", "https://a.example", "expected valid JSON", ".env", ["serve"]),
        ("RAGBRIDGE_RETRIEVAL_MODE", "빠른", "'hybrid', 'dense' or 'keyword'", ".env",
         ["collections", "list"]),
        ("RAGBRIDGE_TOP_K", "다섯", "expected a whole number", "environment", ["keys", "list"]),
        ("RAGBRIDGE_UPSTREAM_HEADERS", "{bad", "valid JSON", "environment",
         ["ingest", "-c", "kb", "."]),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_a_command_with_one_line(
    tmp_path: Path, variable: str, value: str, expected: str, where: str, command: list[str]
) -> None:
    env = {variable: value} if where == "environment" else {}
    if where == ".env":
        (tmp_path / ".env").write_text(f"{variable}={value}\n", encoding="utf-8")
    done = cli(tmp_path, *command, **env)
    assert done.returncode == 2, (command, done.stdout)
    assert done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, (command, done.stderr)
    assert f"{variable}='{value}'" in line and expected in line, line
    assert ("from .env" if where == ".env" else "from the environment") in line
