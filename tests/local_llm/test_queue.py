"""One model, one request at a time: a bounded queue (429 when full) and a client that leaves
stops generation at once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.local_llm.conftest import QUEUE_SIZE, LocalServer
from tests.support.metrics import Scrape

pytestmark = pytest.mark.slow
TOKENS = "ragbridge_local_llm_tokens_total"


def long_body(server: LocalServer, max_tokens: int = 400) -> dict[str, Any]:
    """A request that keeps generating until `max_tokens` (end tokens banned)."""
    return {
        "model": server.model,
        "messages": [{"role": "user", "content": "Count from one to one thousand in words."}],
        "max_tokens": max_tokens,
        "logit_bias": server.end_tokens,
        "stream": True,
    }


@contextmanager
def streaming(server: LocalServer, body: dict[str, Any]) -> Iterator[Iterator[str]]:
    """An open SSE response's lines; leaving the block closes the connection."""
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        yield response.iter_lines()


def read_content_chunks(lines: Iterator[str], count: int) -> None:
    seen = 0
    for line in lines:
        chunk = json.loads(line[6:]) if line.startswith("data: {") else {}
        if any(choice["delta"].get("content") for choice in chunk.get("choices", [])):
            seen += 1
            if seen >= count:
                return
    raise AssertionError("the stream ended early")


def generated(server: LocalServer) -> float:
    return Scrape(server.url).value(TOKENS, kind="completion")


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_client_that_leaves_stops_generation_at_once(local_server: LocalServer) -> None:
    before = generated(local_server)
    with streaming(local_server, long_body(local_server)) as lines:
        read_content_chunks(lines, 5)
    at_disconnect = generated(local_server)
    time.sleep(1.5)  # a running generation makes several tokens in this time
    after = generated(local_server)
    time.sleep(0.5)

    assert at_disconnect - before >= 5
    assert after - at_disconnect <= 2, (at_disconnect, after)  # ~0 tokens after the disconnect
    assert generated(local_server) == after  # and nothing since: the model is idle
    assert after - before < 100  # far from the 400 asked for


def test_a_full_queue_answers_429_with_retry_after(local_server: LocalServer) -> None:
    assert QUEUE_SIZE == 1
    waiting_status: list[int] = []

    def wait_in_queue() -> None:
        body = long_body(local_server, max_tokens=4)
        body["stream"] = False
        response = httpx.post(f"{local_server.url}/v1/chat/completions", json=body, timeout=120)
        waiting_status.append(response.status_code)

    with streaming(local_server, long_body(local_server)) as lines:
        read_content_chunks(lines, 2)  # the model is busy with this one
        queued = threading.Thread(target=wait_in_queue)
        queued.start()
        wait_for(lambda: Scrape(local_server.url).value("ragbridge_local_llm_waiting") == 1)

        refused = httpx.post(
            f"{local_server.url}/v1/chat/completions",
            json={**long_body(local_server), "stream": False},
            timeout=30,
        )

        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "local_model_busy"
        assert "RAGBRIDGE_LOCAL_QUEUE_SIZE" in error["message"]
    queued.join(timeout=120)
    assert waiting_status == [200]  # the queued request ran once the model was free
