"""Parsing an upstream's SSE stream, encoding ours, and turning a JSON answer into chunks."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from ragbridge.api.schemas import ChatCompletionChunk
from ragbridge.errors import UpstreamError
from ragbridge.llm.chunks import completion_chunks
from ragbridge.llm.sse import encode_event, iter_sse_chunks, iter_sse_data


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _parse(lines: list[str], *, newline: str = "\n") -> list[str]:
    """Parse `lines` delivered whole, and byte by byte: the result must not depend on it."""
    data = newline.join(lines).encode()

    async def collect(size: int) -> list[str]:
        return [payload.decode() async for payload in iter_sse_data(_chunks(data, size))]

    whole, bytewise = asyncio.run(collect(len(data) or 1)), asyncio.run(collect(1))
    assert whole == bytewise
    return whole


def test_data_payloads_up_to_done() -> None:
    lines = [": keep-alive", "", 'data: {"a":1}', "", "event: x", "id: 3", 'data:{"b":2}', ""]
    lines += ["data: [DONE]", "", 'data: {"after":"done"}', ""]
    assert _parse(lines) == ['{"a":1}', '{"b":2}']


def test_multi_line_data_and_a_stream_without_final_blank_line() -> None:
    assert _parse(["data: first", "data: second", "", "data: last"]) == ["first\nsecond", "last"]


def test_crlf_lines_and_utf8_split_across_chunks() -> None:
    lines = ['data: {"content":"안녕하세요"}', "", "data: [DONE]", ""]
    assert _parse(lines, newline="\r\n") == ['{"content":"안녕하세요"}']


def test_encode_event_round_trips() -> None:
    chunk = {"x": "한국어 답변입니다.\n두 번째 줄", "choices": []}
    encoded = encode_event(chunk)
    assert encoded == 'data: {"x":"한국어 답변입니다.\\n두 번째 줄","choices":[]}\n\n'.encode()
    assert _parse(encoded.decode().split("\n")) == [encoded.decode()[6:-2]]
    assert json.loads(_parse(encoded.decode().split("\n"))[0]) == chunk


def _parse_chunks(data: bytes) -> list[dict[str, object]]:
    async def collect() -> list[dict[str, object]]:
        return [chunk async for chunk in iter_sse_chunks(_chunks(data, 7))]

    return asyncio.run(collect())


def test_chunks_are_parsed_once_as_objects_and_empty_events_skipped() -> None:
    data = 'data: {"content":"한라산"}\n\ndata: \n\ndata: {"b":2}\n\ndata: [DONE]\n\n'.encode()
    assert _parse_chunks(data) == [{"content": "한라산"}, {"b": 2}]


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"'])
def test_an_event_that_is_not_a_json_object_breaks_the_stream(payload: bytes) -> None:
    with pytest.raises(UpstreamError, match="not JSON"):
        _parse_chunks(b'data: {"a":1}\n\ndata: ' + payload + b"\n\n")


COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "stub-alpha",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "안녕하세요",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_completion_becomes_role_content_finish_and_usage_chunks() -> None:
    chunks = completion_chunks(COMPLETION, include_usage=True)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == "chatcmpl-1" and chunk["model"] == "stub-alpha"
        json.dumps(chunk)
    role, content, finish, usage = chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    delta = content["choices"][0]["delta"]
    assert delta["content"] == "안녕하세요"
    assert delta["tool_calls"][0]["index"] == 0
    assert delta["tool_calls"][0]["function"]["name"] == "f"
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 5


def test_usage_chunk_only_when_asked_for() -> None:
    chunks = completion_chunks(COMPLETION, include_usage=False)
    assert all(chunk["choices"] for chunk in chunks)
