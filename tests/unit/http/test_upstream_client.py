"""`UpstreamClient` on `httpx.MockTransport`: retries and their limits, errors mapped for the
client, headers a corporate gateway wants, and streams that are never repeated. What needs a
real wire (SSE through uvicorn, disconnects, Open WebUI) stays in tests/integration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers

from ragbridge.errors import RateLimited, UpstreamError, UpstreamTimeout
from ragbridge.llm.upstream import UpstreamClient, UpstreamConfig
from ragbridge.retry import RetryPolicy
from ragbridge.service.telemetry import Metrics
from tests.unit.http.scripted import BreaksAfter, Scripted, error

pytestmark = pytest.mark.anyio

BODY = {"model": "사내-모델", "messages": [{"role": "user", "content": "부산 지사 주소는?"}]}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "해운대구입니다."}}],
}
MODELS = {"object": "list", "data": [{"id": "사내-모델", "object": "model"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=MODELS if request.url.path.endswith("/models") else ANSWER)


@pytest.fixture
async def scripted() -> Scripted:
    return Scripted(default=answer)


@pytest.fixture
async def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def upstream(scripted: Scripted, metrics: Metrics) -> AsyncIterator[UpstreamClient]:
    config = UpstreamConfig(
        base_url="http://gateway.test/v1",
        api_key="sk-test",
        headers={
            "User-Id": "{request.header.X-OpenWebUI-User-Id}",
            "User-Name": "{request.header.X-OpenWebUI-User-Name}",
            "X-Ticket": "T-1",
        },
        retry=RetryPolicy(retries=2, sleep=scripted.sleep),
    )
    async with scripted.client() as client:
        yield UpstreamClient(config, metrics, client=client)


def counted(metrics: Metrics, name: str, reason: str) -> float:
    return (
        metrics.registry.get_sample_value(f"ragbridge_upstream_{name}_total", {"reason": reason})
        or 0.0
    )


async def test_a_503_is_retried_after_its_retry_after(
    upstream: UpstreamClient, scripted: Scripted, metrics: Metrics
) -> None:
    scripted.script = [error(503, "모델 로딩 중", **{"Retry-After": "3"})]
    assert await upstream.complete(BODY, {}) == ANSWER
    assert scripted.sleeps == [3.0]
    assert scripted.bodies() == [BODY, BODY]
    assert counted(metrics, "retries", "503") == 1


async def test_gives_up_after_the_retries_with_the_upstreams_message(
    upstream: UpstreamClient, scripted: Scripted, metrics: Metrics
) -> None:
    scripted.script = [error(503, "과부하: 잠시 후 다시 시도하세요")] * 3
    with pytest.raises(UpstreamError) as caught:
        await upstream.complete(BODY, {})
    assert caught.value.status == 502
    assert "after 3 attempts" in caught.value.message
    assert "과부하" in caught.value.message
    assert len(scripted.requests) == 3
    assert counted(metrics, "errors", "503") == 1


async def test_a_429_that_persists_is_a_rate_limit_with_its_retry_after(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    scripted.script = [error(429, "할당량 초과", **{"Retry-After": "0"})] * 3
    with pytest.raises(RateLimited) as caught:
        await upstream.complete(BODY, {})
    assert caught.value.status == 429
    assert caught.value.headers == {"Retry-After": "0"}
    assert "할당량 초과" in caught.value.message


async def test_a_429_asking_more_than_the_cap_reaches_the_client_at_once(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    scripted.script = [error(429, "내일 다시", **{"Retry-After": "3600"})]
    with pytest.raises(RateLimited) as caught:
        await upstream.complete(BODY, {})
    assert caught.value.headers == {"Retry-After": "3600"}
    assert len(scripted.requests) == 1 and scripted.sleeps == []


async def test_headers_for_a_corporate_gateway(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    incoming = Headers(
        raw=[(b"x-openwebui-user-id", b"7e83"), (b"x-openwebui-user-name", "김철수".encode())]
    )
    await upstream.complete(BODY, incoming)
    await upstream.complete(BODY, Headers({}))
    first, second = ({k.lower(): v for k, v in r.headers.raw} for r in scripted.requests)
    assert first[b"authorization"] == b"Bearer sk-test"
    assert first[b"user-id"] == b"7e83" and first[b"x-ticket"] == b"T-1"
    assert first[b"user-name"] == "김철수".encode()  # byte for byte
    assert first[b"accept-encoding"] == b"identity"
    assert b"user-id" not in second and second[b"x-ticket"] == b"T-1"  # no source: left out


async def test_a_chat_whose_connection_broke_unanswered_is_not_sent_again(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    scripted.script = [httpx.RemoteProtocolError("Server disconnected without sending a response")]
    with pytest.raises(UpstreamError, match="not retried: it may have received the request"):
        await upstream.complete(BODY, {})
    assert len(scripted.requests) == 1


async def test_the_model_list_is_asked_again_after_a_broken_connection(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    scripted.script = [httpx.ReadError("reset")]
    assert [model["id"] for model in await upstream.list_models()] == ["사내-모델"]
    assert len(scripted.requests) == 2


async def test_an_unreachable_upstream_is_retried_then_a_502(
    upstream: UpstreamClient, scripted: Scripted, metrics: Metrics
) -> None:
    scripted.script = [httpx.ConnectError("Connection refused")] * 3
    with pytest.raises(UpstreamError, match="Cannot reach the upstream LLM"):
        await upstream.complete(BODY, {})
    assert len(scripted.requests) == 3
    assert counted(metrics, "retries", "connect") == 2
    assert counted(metrics, "errors", "connect") == 1


async def test_a_silent_upstream_is_a_504_at_once(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    scripted.script = [httpx.ReadTimeout("no answer")]
    with pytest.raises(UpstreamTimeout) as caught:
        await upstream.complete(BODY, {})
    assert caught.value.status == 504
    assert len(scripted.requests) == 1


async def test_a_stream_that_breaks_after_its_first_chunk_is_not_repeated(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    first = b'data: {"choices": [{"delta": {"content": "\xed\x95\xb4"}}]}\n\n'
    stream = BreaksAfter(first)
    scripted.script = [
        httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    ]
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError, match="broke off"):
        async with upstream.open_stream({**BODY, "stream": True}, {}) as reply:
            async for chunk in reply.chunks():
                received.append(chunk)
    assert [chunk["choices"][0]["delta"]["content"] for chunk in received] == ["해"]
    assert len(scripted.requests) == 1


async def test_an_injected_client_is_left_open(
    upstream: UpstreamClient, scripted: Scripted
) -> None:
    await upstream.aclose()
    assert await upstream.complete(BODY, {}) == ANSWER  # its owner closes it


def test_the_config_comes_from_settings() -> None:
    from ragbridge.settings import Settings

    settings = Settings(
        upstream_base_url="http://gateway.test/v1",
        upstream_api_key="sk-1",
        upstream_max_retries=5,
        upstream_retry_base_delay=0.1,
        upstream_headers={"X-Ticket": "T-1"},
    )
    config = UpstreamConfig.from_settings(settings)
    assert (config.base_url, config.api_key, dict(config.headers)) == (
        "http://gateway.test/v1",
        "sk-1",
        {"X-Ticket": "T-1"},
    )
    assert (config.retry.retries, config.retry.base_delay) == (5, 0.1)
    assert "sk-1" not in repr(config)
    with pytest.raises(ValueError, match="RAGBRIDGE_UPSTREAM_BASE_URL is not set"):
        UpstreamConfig.from_settings(Settings())
