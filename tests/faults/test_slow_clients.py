"""Slowloris and idle connections against `ragbridge serve`'s own uvicorn configuration: headers
sent a byte at a time and connections that never send anything are closed after the header
timeout, while `/health` keeps answering."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from urllib.parse import urlparse

import httpx

from ragbridge.settings import Settings

HEADER_TIMEOUT = 1.0
Serve = Callable[[Settings], AbstractContextManager[str]]


def connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=10)


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if it did not in time."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def health_latencies(url: str, count: int) -> list[float]:
    seconds = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(count):
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            seconds.append(time.perf_counter() - started)
    return seconds


def test_slowloris_headers_are_cut_off(
    make_settings: Callable[..., Settings],
    serve_like_cli: Serve,
    record_fault: Callable[..., None],
) -> None:
    settings = make_settings(header_timeout=HEADER_TIMEOUT)
    with serve_like_cli(settings) as url:
        sock = connect(url)
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        opened = time.monotonic()
        sock.settimeout(0.2)
        cut_after = None
        try:
            for byte in request:  # one byte every 50 ms: never a complete header block
                sock.send(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - opened > HEADER_TIMEOUT + 3:
                    break
        except (BrokenPipeError, ConnectionResetError):
            cut_after = time.monotonic() - opened
        if cut_after is None:
            left = closed_by_server(sock, within=HEADER_TIMEOUT + 3)
            cut_after = None if left is None else time.monotonic() - opened
        sock.close()
        assert cut_after is not None, "a slowloris connection was never closed"
        assert cut_after < HEADER_TIMEOUT + 1.5
        healthy = health_latencies(url, 20)
    record_fault(
        "slowloris (headers 1 byte / 50 ms)",
        requests=20,
        failed=0,
        lost=0,
        recover_s=cut_after,
        note=f"closed after {cut_after:.1f} s (header timeout {HEADER_TIMEOUT:.0f} s); "
        f"/health max {max(healthy) * 1000:.0f} ms",
    )


def test_500_idle_connections_are_closed_and_health_stays_fast(
    make_settings: Callable[..., Settings],
    serve_like_cli: Serve,
    record_fault: Callable[..., None],
) -> None:
    settings = make_settings(header_timeout=HEADER_TIMEOUT)
    with serve_like_cli(settings) as url, ExitStack() as stack:
        idle = [stack.enter_context(connect(url)) for _ in range(500)]
        opened = time.monotonic()
        during = health_latencies(url, 50)
        time.sleep(max(0.0, HEADER_TIMEOUT + 0.5 - (time.monotonic() - opened)))
        still_open = [s for s in idle if closed_by_server(s, within=2.0) is None]
        recovered = time.monotonic() - opened
        assert still_open == [], f"{len(still_open)} idle connections were not closed"
        # A well-behaved keep-alive client is unaffected.
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/health").status_code == 200
    p99 = statistics.quantiles(during, n=100)[98]
    record_fault(
        "500 idle connections",
        requests=len(during),
        failed=0,
        lost=0,
        recover_s=recovered,
        note=f"all closed by the header timeout; /health p99 {p99 * 1000:.0f} ms meanwhile",
    )
