"""Server-sent events as OpenAI streams them: parse an upstream stream, encode ours, fake one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def encode_event(payload: str) -> bytes:
    """One SSE `data:` event; a payload spanning lines becomes one `data:` line per line."""
    if "\n" in payload:
        return "".join(f"data: {line}\n" for line in payload.split("\n")).encode() + b"\n"
    return b"data: " + payload.encode() + b"\n\n"


async def iter_sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The `data` payload of each event in an SSE byte stream, up to `[DONE]` or the end.

    Comments (keep-alives) and the `event`, `id` and `retry` fields are dropped: OpenAI streams
    carry everything in `data`. Lines end in LF or CRLF. Parsing bytes is cheaper than text.
    """
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if (payload := _feed(line, data)) is None:
                continue
            if payload == "[DONE]":
                return
            yield payload
    for line in (buffer, b""):  # a stream that ended without its final blank line
        if (payload := _feed(line, data)) is not None and payload != "[DONE]":
            yield payload


def _feed(line: bytes, data: list[bytes]) -> str | None:
    """Take one line into `data`; a blank line returns the finished event's payload."""
    line = line.removesuffix(b"\r")
    if line:
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        return None
    if not data:
        return None
    payload = b"\n".join(data).decode("utf-8", "replace")
    data.clear()
    return payload


def completion_to_chunks(
    completion: dict[str, Any], *, include_usage: bool
) -> list[dict[str, Any]]:
    """A finished `chat.completion` as the `chat.completion.chunk`s a streaming upstream sends.

    Per choice: a role delta, a delta with the content (and tool calls or any other message
    field), then the finish reason; last, when asked for, a usage chunk with no choices.
    """
    base = {
        "id": completion.get("id") or f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model", ""),
    }
    if fingerprint := completion.get("system_fingerprint"):
        base["system_fingerprint"] = fingerprint

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**base, "choices": choices, **extra}

    chunks: list[dict[str, Any]] = []
    for position, choice in enumerate(completion.get("choices") or []):
        index = choice.get("index", position)
        message = dict(choice.get("message") or {})
        role = message.pop("role", "assistant")
        if tool_calls := message.get("tool_calls"):
            message["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(tool_calls) if isinstance(call, dict)
            ]
        delta = {key: value for key, value in message.items() if value is not None}
        chunks.append(chunk([{"index": index, "delta": {"role": role, "content": ""}}]))
        if delta:
            chunks.append(chunk([{"index": index, "delta": delta}]))
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}
        if "logprobs" in choice:
            finish["logprobs"] = choice["logprobs"]
        chunks.append(chunk([finish]))
    if include_usage and completion.get("usage") is not None:
        chunks.append(chunk([], usage=completion["usage"]))
    return chunks
