"""`ragbridge serve` as a process: refusing an open address, logs, draining on SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_ragbridge
from tests.support.server import ragbridge_env, ragbridge_serve
from tests.support.upstream import Reply, ScriptedUpstream

ADMIN_KEY = "serve-admin-key-do-not-log"
pytestmark = pytest.mark.slow


def test_refuses_to_serve_an_open_address_without_a_key(tmp_path: Path) -> None:
    env = ragbridge_env(tmp_path / "data")
    result = run_ragbridge("serve", "--host", "0.0.0.0", "--port", "1", env=env, timeout=120)
    assert result.returncode == 2
    assert "0.0.0.0" in result.stderr and "RAGBRIDGE_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_drains_streams_refuses_new_requests_and_logs_no_key(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    env = ragbridge_env(
        tmp_path / "data",
        RAGBRIDGE_API_KEY=ADMIN_KEY,
        RAGBRIDGE_UPSTREAM_BASE_URL=upstream.url,
        RAGBRIDGE_LOG_JSON="true",
        RAGBRIDGE_SHUTDOWN_TIMEOUT="20",
    )
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    log = tmp_path / "serve.log"
    tokens = [f" t{i}" for i in range(12)]
    with ragbridge_serve(env, log, stop_timeout=0) as server:
        proc, url = server.proc, server.url
        upstream.script(Reply(tokens=tokens, token_delay=0.25))  # a 3-second answer
        received: list[str] = []

        def stream() -> None:
            body = {
                "model": "gpt-test",
                "stream": True,
                "messages": [{"role": "user", "content": "Tell me slowly."}],
            }
            with httpx.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=auth, timeout=30
            ) as response:
                assert response.status_code == 200
                received.extend(line for line in response.iter_lines() if line)

        reader = threading.Thread(target=stream)
        reader.start()
        assert upstream.wait_for(
            lambda: bool(upstream.streams) and upstream.streams[-1].tokens_sent > 0
        )
        proc.send_signal(signal.SIGTERM)

        deadline = time.monotonic() + 5
        while True:  # the signal is handled on uvicorn's next tick
            refused = httpx.get(url + "/v1/models", headers=auth, timeout=5)
            if refused.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert httpx.get(url + "/health", timeout=5).status_code == 200  # still alive
        reader.join(timeout=30)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)

    assert received[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in received[:-1]
        if line.startswith("data: {") and '"choices"' in line
    )
    assert text == "".join(tokens)  # the in-flight stream ran to its end
    output = log.read_text()
    assert ADMIN_KEY not in output
    access = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"ragbridge.access"' in line
    ]
    streamed = [a for a in access if a["route"] == "/v1/chat/completions"]
    assert streamed and streamed[0]["status"] == 200 and streamed[0]["key"] == "admin"
    assert any(a["status"] == 503 and a["path"] == "/v1/models" for a in access)
