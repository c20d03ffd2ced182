"""The official `openai` SDK via ragbridge to a scripted upstream: all arrives unchanged."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import openai
import pytest

from ragbridge.api.schemas import ChatCompletion, ChatCompletionChunk
from ragbridge.settings import Settings
from tests.support.upstream import Reply, ScriptedUpstream, gateway_settings

HISTORY = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "My code word is PAPAYA-42."},
    {"role": "assistant", "content": "Noted."},
    {"role": "user", "content": [{"type": "text", "text": "환불 정책을 알려주세요."}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "30 days"},
    {"role": "user", "content": "And my code word?"},
]
EXTRA_FIELDS: dict[str, Any] = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look something up.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "auto",
    "max_tokens": 123,
    "temperature": 0.2,
    "response_format": {"type": "text"},
    "user": "user-7",
}
UNKNOWN_FIELDS = {"x_vendor_option": {"depth": 3, "tags": ["a", "b"]}, "top_k": 40}
HEADER_MAP = {"User-Id": "{request.header.X-OpenWebUI-User-Id}", "X-Ticket": "T-1"}


@pytest.fixture
def client(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> Iterator[openai.OpenAI]:
    settings = make_settings(
        **gateway_settings(upstream, upstream_headers=HEADER_MAP, upstream_api_key="sk-upstream")
    )
    with serve_app(settings) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)


USER_HEADERS = {"X-OpenWebUI-User-Id": "7e834989", "X-OpenWebUI-User-Name": "Ada"}


def test_non_streamed_chat_relays_everything_unchanged(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    completion = client.chat.completions.create(
        model="stub-beta",
        messages=HISTORY,  # type: ignore[arg-type]
        extra_headers=USER_HEADERS,
        extra_body=UNKNOWN_FIELDS,
        **EXTRA_FIELDS,
    )

    sent = upstream.chat_requests[-1]
    assert sent.body == {
        "model": "stub-beta",
        "messages": HISTORY,
        **EXTRA_FIELDS,
        **UNKNOWN_FIELDS,
    }
    assert sent.headers["user-id"] == "7e834989"
    assert sent.headers["x-ticket"] == "T-1"
    assert sent.headers["authorization"] == "Bearer sk-upstream"
    assert "x-openwebui-user-name" not in sent.headers  # only mapped headers go upstream

    ChatCompletion.model_validate(completion.model_dump())
    assert completion.id and completion.created and completion.object == "chat.completion"
    assert completion.model == "stub-beta"
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.usage is not None and completion.usage.completion_tokens == 4


def test_streamed_chat_relays_everything_unchanged_and_usage_when_asked(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script(Reply(tokens=["안녕", "하세요", ", ", "world"]))
    stream = client.chat.completions.create(
        model="stub-alpha",
        messages=HISTORY,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=USER_HEADERS,
        extra_body=UNKNOWN_FIELDS,
        **EXTRA_FIELDS,
    )
    chunks = list(stream)

    sent = upstream.chat_requests[-1]
    expected = {"model": "stub-alpha", "messages": HISTORY, **EXTRA_FIELDS, **UNKNOWN_FIELDS}
    assert sent.body == {**expected, "stream": True, "stream_options": {"include_usage": True}}
    assert sent.headers["user-id"] == "7e834989" and sent.headers["x-ticket"] == "T-1"

    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
        assert chunk.model == "stub-alpha" and chunk.object == "chat.completion.chunk"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "안녕하세요, world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_stream_without_include_usage_has_no_usage_chunk(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="stub-alpha", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "stream_options" not in upstream.chat_requests[-1].body
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_tool_calls_come_back_streamed_and_not(
    client: openai.OpenAI, upstream: ScriptedUpstream
) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    upstream.script(Reply(tokens=[], tool_calls=[call]), Reply(tokens=[], tool_calls=[call]))
    messages = [{"role": "user", "content": "look it up"}]

    completion = client.chat.completions.create(
        model="stub-beta",
        messages=messages,  # type: ignore[arg-type]
        **EXTRA_FIELDS,
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    tool_calls = completion.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].id == "call_9"

    chunks = list(
        client.chat.completions.create(
            model="stub-beta",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            **EXTRA_FIELDS,
        )
    )
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
    assert any(d and d[0].function and d[0].function.name == "lookup" for d in deltas)


def test_models_come_from_the_upstream(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["stub-alpha", "stub-beta", "gpt-test"]


def test_korean_header_values_reach_the_upstream_byte_for_byte(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    settings = make_settings(**gateway_settings(upstream, upstream_headers=HEADER_MAP))
    body = {"model": "stub-alpha", "messages": [{"role": "user", "content": "안녕하세요"}]}
    with serve_app(settings) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers=[(b"X-OpenWebUI-User-Id", "김철수".encode())],
        )
    assert response.status_code == 200
    sent = upstream.chat_requests[-1]
    assert sent.body == body
    assert sent.headers["user-id"].encode("latin-1").decode("utf-8") == "김철수"
