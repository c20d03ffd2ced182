"""Upstream work ends with the client: whatever point a client leaves at, the scripted upstream
sees its request closed within a second; and a POST that may have reached the upstream is never
sent twice.

Clients here are raw sockets, so each test decides exactly when the connection closes: before
the response headers, right after them, mid-stream, or while only keep-alives flow.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from ragbridge.settings import Settings
from tests.support.server import free_port
from tests.support.upstream import RecordedRequest, Reply, ScriptedUpstream

Serve = Callable[..., AbstractContextManager[str]]
KOREAN = "서울의 인구는 얼마인가요? 자세히 설명해 주세요."
CLOSE_WITHIN = 1.0  # seconds from the client leaving to the upstream request being closed


def chat(stream: bool = True) -> dict[str, Any]:
    return {
        "model": "stub-alpha",
        "messages": [{"role": "user", "content": KOREAN}],
        "stream": stream,
    }


def open_request(url: str, body: dict[str, Any]) -> socket.socket:
    """A raw HTTP/1.1 POST to ragbridge's chat route; the caller reads and closes."""
    parsed = urlparse(url)
    raw = json.dumps(body, ensure_ascii=False).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
    sock.sendall(head + raw)
    return sock


def read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    """Bytes from `sock` until `marker` was seen `count` times (or the peer closed)."""
    seen = b""
    while seen.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        seen += chunk
    return seen


def upstream_request(upstream: ScriptedUpstream) -> RecordedRequest:
    assert upstream.wait_for(lambda: len(upstream.chat_requests) == 1, timeout=10)
    return upstream.chat_requests[0]


def assert_closed_soon(upstream: ScriptedUpstream, left_at: float) -> float:
    """The upstream saw its request's client (ragbridge) go away within CLOSE_WITHIN s."""
    record = upstream.chat_requests[0]
    assert upstream.wait_for(lambda: record.closed_at is not None, timeout=5), "never closed"
    assert record.disconnected, "the upstream finished its answer instead of being cancelled"
    assert record.closed_at is not None
    delay = record.closed_at - left_at
    assert delay < CLOSE_WITHIN, f"upstream request closed {delay:.2f} s after the client left"
    return delay


def leave(sock: socket.socket) -> float:
    sock.close()
    return time.monotonic()


def test_client_leaving_before_the_response_headers(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    """The route still waits for the first payload (keep-alive every 5 s) when Stop is pressed."""
    upstream.script(Reply(first_byte_delay=30))
    with serve(keepalive_interval=5.0) as url:
        sock = open_request(url, chat())
        upstream_request(upstream)
        time.sleep(0.2)
        assert_closed_soon(upstream, leave(sock))


def test_client_leaving_before_a_non_streamed_answer(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(first_byte_delay=30))
    with serve() as url:
        sock = open_request(url, chat(stream=False))
        upstream_request(upstream)
        time.sleep(0.2)
        assert_closed_soon(upstream, leave(sock))


@pytest.mark.parametrize(
    "upstream_silent", [True, False], ids=["committed-by-keepalive", "first-token"]
)
def test_client_leaving_at_the_headers(
    serve: Serve, upstream: ScriptedUpstream, upstream_silent: bool
) -> None:
    reply = (
        Reply(first_byte_delay=30)
        if upstream_silent
        else Reply(tokens=["토큰"] * 100, token_delay=0.3)
    )
    upstream.script(reply)
    with serve(keepalive_interval=0.3) as url:
        sock = open_request(url, chat())
        head = read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert_closed_soon(upstream, leave(sock))


def test_client_leaving_mid_stream(serve: Serve, upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(tokens=["한국어 "] * 100, token_delay=0.1))
    with serve() as url:
        sock = open_request(url, chat())
        seen = read_until(sock, "한국어".encode(), count=3)
        assert seen.count("한국어".encode()) >= 3
        left_at = leave(sock)
        assert_closed_soon(upstream, left_at)
    assert 3 <= upstream.streams[0].tokens_sent < 100


def test_client_leaving_during_keepalives(serve: Serve, upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(first_byte_delay=30))
    with serve(keepalive_interval=0.2) as url:
        sock = open_request(url, chat())
        assert read_until(sock, b": keep-alive", count=3).count(b": keep-alive") >= 3
        assert_closed_soon(upstream, leave(sock))


def test_a_stream_read_to_the_end_is_not_cut_short(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    """The watch on the client does not mistake the end of a normal answer for a departure."""
    upstream.script(Reply(tokens=["가", "나", "다"], token_delay=0.05))
    with (
        serve() as url,
        httpx.stream("POST", f"{url}/v1/chat/completions", json=chat()) as response,
    ):
        body = response.read().decode()
    assert body.endswith("data: [DONE]\n\n") and "가" in body and "다" in body
    assert upstream.streams[0].outcome == "complete"


# --- retries: only what provably never reached the upstream ------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_post_the_upstream_may_have_received_is_not_sent_again(
    serve: Serve, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script(Reply(hang_up=True), Reply(tokens=["twice"]))
    with serve(upstream_max_retries=3) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(stream), timeout=10)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "without answering" in message and "not retried" in message
    assert len(upstream.chat_requests) == 1


def test_a_refused_connection_is_retried(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    """Nothing was sent: retried up to the limit, then a 502 naming the upstream."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(
        upstream_base_url=dead,
        upstream_max_retries=2,
        upstream_retry_base_delay=0.01,
        upstream_retry_max_delay=0.02,
    )
    with serve_app(settings) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=chat(), timeout=10)
        metrics = httpx.get(f"{url}/metrics").text
    assert response.status_code == 502
    assert "Cannot reach the upstream" in response.json()["error"]["message"]
    retries = [
        line for line in metrics.splitlines() if line.startswith("ragbridge_upstream_retries")
    ]
    assert any('reason="connect"' in line and line.endswith(" 2.0") for line in retries), retries
