"""A scripted OpenAI-compatible LLM on loopback: the only LLM test double ragbridge's tests use.

It serves `GET /v1/models`, `POST /v1/chat/completions` (streamed or not) and `POST /v1/embeddings`
(deterministic vectors), records every request, and answers each chat as scripted:

    upstream.script(Reply(tokens=["Hi", "!"], token_delay=0.3))      # the next chat request
    upstream.fail_next(2, status=503)                                  # then the two after it
    ... ragbridge with upstream_base_url=upstream.url ...
    upstream.chat_requests[-1].body["messages"], upstream.streams[-1].outcome

Unscripted requests get `upstream.default`. In tests use the `upstream` fixture; as a process
(benchmarks): `python -m tests.support.upstream --port 8100 --tokens 16`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.support.server import serve_in_thread

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Reply:
    """How the upstream answers one chat request."""

    tokens: Sequence[str] = ("Hello", ",", " world", "!")
    token_delay: float = 0.0  # seconds between streamed tokens
    first_byte_delay: float = 0.0  # seconds before anything is sent (a hanging upstream)
    status: int = 200  # anything else answers with OpenAI's error envelope
    message: str = "scripted failure"
    retry_after: str | None = None
    stream_as_json: bool = False  # answer a stream request with one JSON body
    break_after: int | None = None  # drop the connection mid-stream after this many tokens
    tool_calls: list[dict[str, Any]] | None = None
    raw: bytes | None = None  # answer with these bytes as text/plain instead (a broken gateway)
    hang_up: bool = False  # read the request, then close the connection without any answer


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any
    at: float = field(default_factory=time.monotonic)
    disconnected: bool = False  # the client went away before the answer was finished
    closed_at: float | None = None  # monotonic time the exchange ended: answered, or client gone


@dataclass
class StreamRecord:
    """What became of one streamed answer."""

    started_at: float
    tokens_sent: int = 0
    first_token_at: float | None = None
    finished_at: float | None = None
    outcome: str = "streaming"  # then "complete", "client_disconnected" or "broken"


class _BrokenOnPurpose(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-stream."""


class ScriptedUpstream:
    """The ASGI app plus its script and its log; `serve()` runs it on a loopback port."""

    def __init__(
        self,
        models: Sequence[str] = ("stub-alpha", "stub-beta", "gpt-test"),
        *,
        keep_log: bool = True,
        check_models: bool = False,
    ) -> None:
        self.models = list(models)
        # Like Ollama: chats for a model it does not serve get its 404; `name` serves `name:latest`.
        self.check_models = check_models
        self.keep_log = keep_log  # off for benchmarks, which send too many requests to keep
        self.default = Reply()
        self.models_status = 200  # make GET /v1/models fail with this status
        self.embedding_dim = 16
        self.embedding_delay = 0.0  # seconds each embeddings request takes (a slow model)
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.streams: list[StreamRecord] = []
        self._script: deque[Reply] = deque()

    # --- scripting and inspection -------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Answer the next chat requests with these replies, in order."""
        self._script.extend(replies)

    def rescript(self, *replies: Reply) -> None:
        """Like `script`, after forgetting replies an earlier test scripted but never used."""
        self._script.clear()
        self.script(*replies)

    def fail_next(
        self,
        count: int,
        status: int = 503,
        *,
        message: str = "overloaded",
        retry_after: str | None = None,
    ) -> None:
        """Fail the next `count` chat requests with `status` (and a Retry-After header)."""
        self.script(*[Reply(status=status, message=message, retry_after=retry_after)] * count)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll `condition` until it holds or `timeout` passes; returns whether it held."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    @contextmanager
    def serve(self) -> Iterator[ScriptedUpstream]:
        """Run on 127.0.0.1:<free port> in a thread; `.url` is the base URL ending in /v1."""
        with serve_in_thread(self) as base:
            self.url = f"{base}/v1"
            yield self

    # --- the ASGI app -----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = RecordedRequest(scope["method"], scope["path"], headers, body)
        if self.keep_log:
            self.requests.append(record)
        route = (scope["method"], scope["path"])
        if route == ("GET", "/v1/models"):
            if self.models_status != 200:
                await _json(send, self.models_status, _error("models unavailable"))
                return
            data = [
                {"id": m, "object": "model", "created": 1, "owned_by": "scripted"}
                for m in self.models
            ]
            await _json(send, 200, {"object": "list", "data": data})
        elif route == ("POST", "/v1/chat/completions") and isinstance(body, dict):
            if self.check_models and not self._serves(str(body.get("model"))):
                message = f'model "{body.get("model")}" not found, try pulling it first'
                await _json(send, 404, _error(message))
                return
            reply = self._script.popleft() if self._script else self.default
            if reply.hang_up:
                record.closed_at = time.monotonic()
                await _hang_up(send)
                return
            try:
                record.disconnected = await _until_disconnect(
                    receive, self._chat(reply, body, send)
                )
            finally:
                record.closed_at = time.monotonic()
        elif route == ("POST", "/v1/embeddings") and isinstance(body, dict):
            await asyncio.sleep(self.embedding_delay)
            await _json(send, 200, self._embeddings(body))
        else:
            await _json(send, 404, _error(f"no route {scope['method']} {scope['path']}"))

    def _serves(self, model: str) -> bool:
        return model in self.models or f"{model}:latest" in self.models

    async def _chat(self, reply: Reply, body: dict[str, Any], send: Send) -> None:
        await asyncio.sleep(reply.first_byte_delay)
        if reply.status != 200:
            extra = {"retry-after": reply.retry_after} if reply.retry_after else {}
            await _json(send, reply.status, _error(reply.message), extra)
            return
        if reply.raw is not None:
            headers = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": reply.raw, "more_body": False})
            return
        model = str(body.get("model", ""))
        if not body.get("stream") or reply.stream_as_json:
            await _json(send, 200, self._completion(reply, body, model))
            return
        record = StreamRecord(started_at=time.monotonic())
        if self.keep_log:
            self.streams.append(record)
        try:
            await self._stream(reply, body, model, send, record)
        except asyncio.CancelledError:
            if record.outcome == "streaming":
                record.outcome = "client_disconnected"
            raise
        finally:
            record.finished_at = time.monotonic()

    async def _stream(
        self, reply: Reply, body: dict[str, Any], model: str, send: Send, record: StreamRecord
    ) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        base = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
        }
        base["model"] = model

        async def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = json.dumps({**base, "choices": choices, **extra}, ensure_ascii=False)
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {data}\n\n".encode(),
                    "more_body": True,
                }
            )

        await event(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        for position, token in enumerate(reply.tokens):
            if position:
                await asyncio.sleep(reply.token_delay)
            if reply.break_after is not None and position >= reply.break_after:
                record.outcome = "broken"
                raise _BrokenOnPurpose("scripted mid-stream disconnect")
            await event([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
            record.tokens_sent += 1
            record.first_token_at = record.first_token_at or time.monotonic()
        if reply.tool_calls:
            calls = [{"index": i, **call} for i, call in enumerate(reply.tool_calls)]
            await event([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}])
        await event([{"index": 0, "delta": {}, "finish_reason": _finish_reason(reply)}])
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            await event([], usage=_usage(body, reply))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        record.outcome = "complete"
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _completion(reply: Reply, body: dict[str, Any], model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.tokens)}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
            "usage": _usage(body, reply),
        }

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(t), self.embedding_dim)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage}


def gateway_settings(upstream: ScriptedUpstream, **overrides: Any) -> dict[str, Any]:
    """Settings overrides pointing ragbridge at `upstream`, with retries quick enough for tests."""
    values: dict[str, Any] = {
        "upstream_base_url": upstream.url,
        "upstream_retry_base_delay": 0.01,
        "upstream_retry_max_delay": 0.05,
        "keepalive_interval": 5.0,
    }
    values.update(overrides)
    return values


def _finish_reason(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(reply.tokens),
        "total_tokens": prompt + len(reply.tokens),
    }


def _vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for `text` (equal texts, equal vectors)."""
    digest = hashlib.sha256(text.encode()).digest() * (dim // 32 + 1)
    values = [b - 127.5 for b in digest[:dim]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "scripted_error", "param": None, "code": None}}


async def _json(
    send: Send, status: int, body: Any, extra_headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


async def _until_disconnect(receive: Receive, work: Awaitable[None]) -> bool:
    """Run `work`, cancelling it if the client goes away first; returns whether it did."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await task
    except asyncio.CancelledError:
        if not watcher.done():
            raise
        return True
    finally:
        watcher.cancel()
    return False


async def _hang_up(send: Send) -> None:
    """Close the connection without a single answer byte (uvicorn would otherwise send a 500).

    uvicorn's `send` is a bound method of the request cycle, which holds the transport.
    """
    transport = send.__self__.transport  # type: ignore[attr-defined]
    transport.close()
    for _ in range(3):  # let connection_lost run, so uvicorn knows the client is gone
        await asyncio.sleep(0)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    """Serve a scripted upstream on a fixed port (for benchmarks), until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=16, help="tokens per answer")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args()
    upstream = ScriptedUpstream(models=["bench-model"], keep_log=False)
    upstream.default = Reply(
        tokens=[f" t{i}" for i in range(args.tokens)], token_delay=args.token_delay
    )
    uvicorn.run(upstream, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
