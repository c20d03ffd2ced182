"""The upstream LLM misbehaving (dropping streams, stalling, answering garbage, 5xx storms) and
Redis restarting mid-traffic: every failure reaches the client as a clear error (never a silent
truncation), abandoned upstream requests are closed, and service recovers at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx

from ragbridge.settings import Settings
from tests.support.redis import RedisForTests
from tests.support.upstream import Reply, ScriptedUpstream, gateway_settings

Serve = Callable[..., AbstractContextManager[str]]
ADMIN = "rb-admin-" + "f0" * 20
CHAT = {
    "model": "stub-alpha",
    "messages": [{"role": "user", "content": "부산의 날씨를 알려 주세요."}],
    "stream": True,
}


@dataclass
class Outcome:
    ok: bool  # 200 and a complete answer ending in [DONE]
    error_shown: bool  # an HTTP error or an error event: the client knows it failed
    at: float

    @property
    def silent_loss(self) -> bool:
        """A truncated answer that looked complete: what must never happen."""
        return not self.ok and not self.error_shown


def stream_chat(url: str, headers: dict[str, str] | None = None) -> Outcome:
    try:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30
        ) as response:
            if response.status_code != 200:
                response.read()
                return Outcome(False, "error" in response.json(), time.monotonic())
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    except httpx.HTTPError:
        return Outcome(False, False, time.monotonic())
    errored = any(e != "[DONE]" and "error" in json.loads(e) for e in events)
    done = bool(events) and events[-1] == "[DONE]"
    return Outcome(done and not errored, errored, time.monotonic())


def run_fault(
    url: str, faulty: int, total: int, headers: dict[str, str] | None = None
) -> tuple[list[Outcome], float]:
    """`total` sequential chats, the first `faulty` scripted to fail; (outcomes, recovery s)."""
    outcomes = [stream_chat(url, headers) for _ in range(total)]
    last_failure = max((o.at for o in outcomes[:faulty] if not o.ok), default=None)
    first_ok_after = next((o.at for o in outcomes[faulty:] if o.ok), None)
    assert first_ok_after is not None, "never recovered"
    recovered = 0.0 if last_failure is None else first_ok_after - last_failure
    return outcomes, recovered


def record(
    record_fault: Callable[..., None],
    fault: str,
    outcomes: list[Outcome],
    recovered: float,
    note: str,
) -> None:
    failed = sum(not o.ok for o in outcomes)
    silent = sum(o.silent_loss for o in outcomes)
    assert silent == 0, f"{silent} answers were cut short without an error"
    record_fault(
        fault, requests=len(outcomes), failed=failed, lost=silent, recover_s=recovered, note=note
    )


def test_upstream_dropping_mid_stream(
    serve: Serve, upstream: ScriptedUpstream, record_fault: Callable[..., None]
) -> None:
    upstream.script(*[Reply(tokens=["가", "나", "다", "라"], break_after=2)] * 5)
    with serve() as url:
        outcomes, recovered = run_fault(url, 5, 15)
    assert [o.ok for o in outcomes] == [False] * 5 + [True] * 10
    record(record_fault, "upstream drops mid-stream (5 of 15)", outcomes, recovered,
           "each cut stream ends with an error event and [DONE]; "
           "no retry after bytes were sent")  # fmt: skip


def test_upstream_stalling(
    serve: Serve, upstream: ScriptedUpstream, record_fault: Callable[..., None]
) -> None:
    upstream.script(
        Reply(first_byte_delay=60),  # before headers
        Reply(tokens=["가", "나"], token_delay=60),  # mid-stream
    )
    with serve(upstream_read_timeout=1.0) as url:
        started = time.monotonic()
        outcomes, recovered = run_fault(url, 2, 10)
        stalled = outcomes[1].at - started
    assert [o.ok for o in outcomes] == [False] * 2 + [True] * 8
    stalled_requests = upstream.chat_requests[:2]
    assert all(r.closed_at is not None and r.disconnected for r in stalled_requests)
    record(record_fault, "upstream stalls (before headers, mid-stream)", outcomes, recovered,
           f"504 / error event after the 1 s read timeout ({stalled:.1f} s for both); "
           "stalled upstream requests closed")  # fmt: skip


def test_upstream_answering_garbage(
    serve: Serve, upstream: ScriptedUpstream, record_fault: Callable[..., None]
) -> None:
    upstream.script(
        Reply(raw=b"\x00\xff<html>502 Bad Gateway</html>"),
        Reply(stream_as_json=True, status=200, tokens=[]),
        Reply(status=200, raw=b"data: {not json\n\n"),
    )
    with serve() as url:
        outcomes, recovered = run_fault(url, 3, 10)
    assert outcomes[0].error_shown and all(o.ok for o in outcomes[3:])
    record(record_fault, "upstream answers garbage (HTML, empty JSON, broken SSE)", outcomes,
           recovered, "502 naming what came back")  # fmt: skip


def test_upstream_5xx_storm(
    serve: Serve, upstream: ScriptedUpstream, record_fault: Callable[..., None]
) -> None:
    """40 answers of 503 shared by 10 concurrent clients; retries absorb part of the storm."""
    upstream.fail_next(40, status=503)
    with serve(upstream_max_retries=3) as url, ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(lambda _: stream_chat(url), range(30)))
        after = [stream_chat(url) for _ in range(5)]
    outcomes.sort(key=lambda o: o.at)
    failures = [o.at for o in outcomes if not o.ok]
    last_failure = max(failures, default=outcomes[0].at)
    assert all(o.ok for o in after)
    recovered = next(o.at for o in outcomes + after if o.ok and o.at >= last_failure) - last_failure
    record(record_fault, "upstream 5xx storm (40 x 503, 10 clients)", outcomes + after,
           max(0.0, recovered),
           "retried with backoff; the rest get 502 with the upstream's message")  # fmt: skip


def test_redis_restarted_mid_traffic(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    redis_server: RedisForTests,
    record_fault: Callable[..., None],
) -> None:
    settings = make_settings(
        **gateway_settings(
            upstream, api_key=ADMIN, redis_url=redis_server.url, response_cache=False
        )
    )
    with serve_app(settings) as url:
        created = httpx.post(
            f"{url}/v1/keys",
            json={"name": "open-webui", "rpm": 10_000},  # limited: its counts live in Redis
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        headers = {"Authorization": f"Bearer {created.json()['key']}"}
        before = [stream_chat(url, headers) for _ in range(5)]
        redis_server.stop()
        stopped_at = time.monotonic()
        during = [stream_chat(url, headers) for _ in range(10)]
        redis_server.start()
        after = [stream_chat(url, headers) for _ in range(10)]
    outcomes = before + during + after
    away = next(o.at for o in after if o.ok) - stopped_at
    assert all(o.ok for o in outcomes)
    record(record_fault, "Redis stopped and restarted mid-traffic", outcomes, 0.0,
           f"in-process limits and caches for the {away:.1f} s it was away; "
           "no request failed")  # fmt: skip
