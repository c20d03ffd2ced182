"""Streams are real: relayed as they arrive, kept alive, converted from JSON, and cancellable."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import openai

from ragbridge.api.schemas import ChatCompletionChunk
from tests.support.upstream import Reply, ScriptedUpstream

Serve = Callable[..., AbstractContextManager[str]]
CHAT = {"model": "stub-alpha", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def sse_lines(response: httpx.Response) -> Iterator[tuple[float, str]]:
    """(arrival time, line) for each non-empty line of an SSE response."""
    for line in response.iter_lines():
        if line:
            yield time.monotonic(), line


def data_events(lines: list[str]) -> list[Any]:
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def test_tokens_reach_the_client_as_the_upstream_sends_them(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=[f"t{i} " for i in range(6)], token_delay=0.3))
    with serve() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        arrivals = []
        for chunk in client.chat.completions.create(**CHAT):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((time.monotonic(), chunk.choices[0].delta.content))

    record = upstream.streams[-1]
    assert record.outcome == "complete" and record.finished_at is not None
    assert [token for _, token in arrivals] == [f"t{i} " for i in range(6)]
    first_token_at = arrivals[0][0]
    # The upstream needs 1.5 s from first token to last; the client had its first long before.
    assert record.finished_at - first_token_at > 0.75
    assert arrivals[-1][0] - first_token_at > 0.75


def test_stream_response_headers_and_done_last(serve: Serve) -> None:
    with serve() as url, httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response:
        lines = [line for _, line in sse_lines(response)]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    for event in data_events(lines):
        ChatCompletionChunk.model_validate(event)
    assert lines[-1] == "data: [DONE]"


def test_keepalives_while_a_non_streaming_upstream_thinks_then_its_answer_as_chunks(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=["Slow", " answer"], first_byte_delay=1.2, stream_as_json=True))
    body = {**CHAT, "stream_options": {"include_usage": True}}
    with (
        serve(keepalive_interval=0.2) as url,
        httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        started = time.monotonic()
        timed = list(sse_lines(response))
    assert response.status_code == 200
    lines = [line for _, line in timed]
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert lines[:first_data].count(": keep-alive") >= 3
    assert all(line == ": keep-alive" for line in lines[:first_data])
    # the JSON answer went out as soon as it arrived (the upstream answered after 1.2 s)
    assert timed[first_data][0] - started < 1.2 + 1.0

    events = data_events(lines)
    for event in events:
        ChatCompletionChunk.model_validate(event)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[1]["choices"][0]["delta"]["content"] == "Slow answer"
    assert events[2]["choices"][0]["finish_reason"] == "stop"
    assert events[3]["choices"] == [] and events[3]["usage"]["completion_tokens"] == 2
    assert {event["model"] for event in events} == {"stub-alpha"}


def test_non_streaming_upstream_through_the_sdk(serve: Serve, upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(tokens=["한국어", " 답변"], stream_as_json=True))
    with serve() as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        chunks = list(client.chat.completions.create(**CHAT))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "한국어 답변"


def test_keepalives_between_slow_tokens(serve: Serve, upstream: ScriptedUpstream) -> None:
    upstream.script(Reply(tokens=["a", "b"], token_delay=0.8))
    with (
        serve(keepalive_interval=0.2) as url,
        httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response,
    ):
        lines = [line for _, line in sse_lines(response)]
    between = lines[lines.index(next(x for x in lines if '"a"' in x)) :]
    assert ": keep-alive" in between
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in data_events(lines)) == "ab"


def test_client_disconnect_cancels_the_upstream_stream(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=[f"t{i}" for i in range(40)], token_delay=0.1))
    with serve() as url:  # ragbridge keeps running: the cancellation is not its shutdown
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response:
            for line in response.iter_lines():
                if '"t1"' in line:
                    break
        assert upstream.wait_for(lambda: upstream.streams[-1].outcome != "streaming", timeout=5)
    record = upstream.streams[-1]
    assert record.outcome == "client_disconnected"
    assert record.tokens_sent < 20
    assert upstream.chat_requests[-1].disconnected


def test_client_disconnect_while_waiting_cancels_the_upstream_request(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(first_byte_delay=30))
    with serve(keepalive_interval=0.1) as url:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response:
            assert next(response.iter_lines()) == ": keep-alive"
        assert upstream.wait_for(lambda: upstream.chat_requests[-1].disconnected, timeout=5)


def test_upstream_breaking_off_mid_stream_ends_with_an_error_event(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=["one", "two", "three"], break_after=2))
    with serve() as url, httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response:
        lines = [line for _, line in sse_lines(response)]
    assert response.status_code == 200
    events = data_events(lines)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if "choices" in e)
    assert text == "onetwo"
    error = events[-1]["error"]
    assert error["type"] == "upstream_error" and "broke off" in error["message"]
    assert len(upstream.chat_requests) == 1  # never retried once tokens were relayed


def test_upstream_hanging_past_the_read_timeout_after_commit_ends_with_a_timeout_event(
    serve: Serve, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(first_byte_delay=30))
    with (
        serve(keepalive_interval=0.1, upstream_read_timeout=0.6) as url,
        httpx.stream("POST", f"{url}/v1/chat/completions", json=CHAT) as response,
    ):
        lines = [line for _, line in sse_lines(response)]
    assert response.status_code == 200
    assert lines[0] == ": keep-alive"
    (event,) = data_events(lines)
    assert event["error"]["type"] == "upstream_timeout"
    assert "Traceback" not in "".join(lines)
