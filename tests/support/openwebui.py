"""The real open-webui==0.12.4 package for integration tests, from its own virtualenv.

`scripts/install-openwebui` creates `.venv-openwebui` (it pins too much to share the project's
venv); set RAGBRIDGE_OPENWEBUI_VENV to use another. Without it the tests skip, saying so.
`OpenWebUI` runs `open-webui serve` on loopback, offline, with a throwaway data dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, running

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 600.0  # about 20 s on an idle machine, minutes on a loaded one


def openwebui_venv() -> Path:
    return Path(os.environ.get("RAGBRIDGE_OPENWEBUI_VENV") or ROOT / ".venv-openwebui")


def openwebui_python() -> Path:
    """The open-webui venv's python, or skip the test with how to install it."""
    python = openwebui_venv() / "bin" / "python"
    if not (openwebui_venv() / ".installed").exists() or not python.exists():
        pytest.skip(
            f"open-webui is not installed in {openwebui_venv()}: run scripts/install-openwebui"
        )
    return python


def openwebui_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for an offline Open WebUI: no model downloads, no Ollama, no telemetry."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGBRIDGE_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env.update(
        DATA_DIR=str(data_dir),
        WEBUI_SECRET_KEY="ragbridge-tests-secret",
        OFFLINE_MODE="true",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        RAG_EMBEDDING_ENGINE="openai",
        RAG_OPENAI_API_BASE_URL="http://127.0.0.1:9/v1",
        RAG_OPENAI_API_KEY="unused",
        RAG_EMBEDDING_MODEL_AUTO_UPDATE="false",
        RAG_RERANKING_MODEL_AUTO_UPDATE="false",
        WHISPER_MODEL_AUTO_UPDATE="false",
        ENABLE_OLLAMA_API="false",
        OLLAMA_BASE_URL="http://127.0.0.1:9",
        ENABLE_OPENAI_API="false",
        ENABLE_VERSION_UPDATE_CHECK="false",
        ENABLE_COMMUNITY_SHARING="false",
        ANONYMIZED_TELEMETRY="false",
        DO_NOT_TRACK="true",
        SCARF_NO_ANALYTICS="true",
        ENABLE_TITLE_GENERATION="false",
        ENABLE_TAGS_GENERATION="false",
        ENABLE_FOLLOW_UP_GENERATION="false",
        ENABLE_AUTOCOMPLETE_GENERATION="false",
        OMP_WAIT_POLICY="PASSIVE",
        GLOBAL_LOG_LEVEL="WARNING",
        FROM_INIT_PY="true",  # what the open-webui CLI sets: find the packaged frontend
    )
    env.update(extra)
    return env


@dataclass
class OpenWebUI:
    """A running Open WebUI: its URL and the admin's token."""

    url: str
    token: str
    log: Path

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@contextmanager
def running_openwebui(work: Path, **env: str) -> Iterator[OpenWebUI]:
    """`open-webui serve` on a free loopback port, its first user signed up as admin."""
    python = openwebui_python()
    port = free_port()
    command = ["nice", "-n", "10", str(python.parent / "open-webui"), "serve"]
    log = work / "openwebui.log"
    server = ServerProcess(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        openwebui_env(work / "data", **env),
        log,
        cwd=work,
    )
    with running(server, startup_timeout=STARTUP_SECONDS, stop_timeout=20):
        yield OpenWebUI(server.url, _sign_up_admin(server.url), log)


def _sign_up_admin(url: str) -> str:
    """Sign up the first user (who becomes admin), as the browser's sign-up form does."""
    form: dict[str, Any] = {"name": "관리자", "email": "admin@example.com", "password": "pw-12345!"}
    response = httpx.post(f"{url}/api/v1/auths/signup", json=form, timeout=60)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token
