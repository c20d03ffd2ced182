"""Server-sent events as OpenAI streams them: parse an upstream's stream, encode ours; each
event's JSON is parsed once on the way in and encoded once (orjson) on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import orjson

from ragbridge.errors import UpstreamError
from ragbridge.llm.chunks import Chunk

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def encode_event(chunk: Chunk) -> bytes:
    """One SSE `data:` event (orjson never writes a newline, so one line)."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def iter_sse_chunks(chunks: AsyncIterable[bytes]) -> AsyncIterator[Chunk]:
    """Each event's JSON object, parsed once, up to `[DONE]`; empty events are skipped, anything
    else that is not a JSON object raises `UpstreamError` (OpenAI streams carry nothing else)."""
    async for payload in iter_sse_data(chunks):
        if not payload.strip():
            continue
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            shown = payload[:200].decode("utf-8", "replace")
            raise UpstreamError(f"Upstream sent a stream event that is not JSON: {shown!r}")
        yield chunk


async def iter_sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Each event's `data` payload, up to `[DONE]` or the end; comments and other fields are
    dropped (OpenAI streams carry all in `data`). Bytes, as parsing them is cheaper than text."""
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
            if payload == b"[DONE]":
                return
            yield payload
    for line in (buffer, b""):  # a stream that ended without its final blank line
        if (payload := _feed(line, data)) is not None and payload != b"[DONE]":
            yield payload


def _feed(line: bytes, data: list[bytes]) -> bytes | None:
    """Take one line into `data`; a blank line returns the finished event's payload."""
    line = line.removesuffix(b"\r")
    if line:
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        return None
    if not data:
        return None
    payload = b"\n".join(data)
    data.clear()
    return payload
