"""RemoteEmbedder against a scripted OpenAI-compatible embeddings endpoint (`httpx.MockTransport`;
a real server is in tests/integration/test_embeddings_api.py)."""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.remote import RemoteEmbedder, RemoteEmbeddingConfig, approximate_tokens
from ragbridge.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from ragbridge.settings import Settings
from tests.support.server import free_port


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: Exception | None = None


@dataclass
class ScriptedEmbeddings:
    """Answers each POST /v1/embeddings with the next scripted reply, then with real vectors:
    `[len(text), 1, 0, ...]` (unnormalised, `dimension` wide), in the OpenAI shape."""

    script: list[Reply] = field(default_factory=list)
    dimension: int = 3
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/v1/embeddings")
        payload = json.loads(request.content)
        self.requests.append((dict(request.headers), payload))
        reply = self.script.pop(0) if self.script else Reply()
        if reply.error is not None:
            raise reply.error
        if reply.body is not None or reply.status != 200:
            return httpx.Response(reply.status, json=reply.body, headers=reply.headers)
        data = [
            {"object": "embedding", "index": i, "embedding": self.vector(text)}
            for i, text in enumerate(payload["input"])
        ]
        data.reverse()  # servers may answer out of order; `index` decides
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})

    def vector(self, text: str) -> list[float]:
        return [float(len(text)), 1.0] + [0.0] * (self.dimension - 2)


@pytest.fixture
def scripted() -> tuple[ScriptedEmbeddings, str]:
    return ScriptedEmbeddings(), "http://embeddings.test/v1"


@pytest.fixture
def remote_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(base_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "embedding_base_url": base_url,
            "embedding_model": "text-embedding-3-small",
            "embedding_api_key": "sk-test",
            "upstream_retry_base_delay": 0.01,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


def remote_embedder(settings: Settings) -> RemoteEmbedder:
    """The embedder `settings` describe, on its own HTTP client."""
    return RemoteEmbedder(RemoteEmbeddingConfig.from_settings(settings))


def embedder_for(server: ScriptedEmbeddings, settings: Settings) -> RemoteEmbedder:
    """The embedder `settings` describe, its HTTP answered by `server` in-process."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(server.handle))
    return RemoteEmbedder(RemoteEmbeddingConfig.from_settings(settings), client=client)


def run(embedder: RemoteEmbedder, work: Callable[[RemoteEmbedder], Any]) -> Any:
    async def main() -> Any:
        try:
            return await work(embedder)
        finally:
            await embedder.close()

    return asyncio.run(main())


def test_batches_normalises_and_keeps_order(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    settings = remote_settings(url, embedding_batch_size=2)
    created = create_embedder(settings)
    assert isinstance(created, RemoteEmbedder)
    asyncio.run(created.close())
    embedder = embedder_for(server, settings)
    texts = ["가", "나다라", "마바", "사아자차", "카타파하."]
    vectors = run(embedder, lambda e: e.embed_documents(texts))
    expected = np.asarray([server.vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert vectors.dtype == np.float32
    assert [len(payload["input"]) for _, payload in server.requests] == [2, 2, 1]
    headers, payload = server.requests[0]
    assert headers["authorization"] == "Bearer sk-test"
    assert payload["model"] == "text-embedding-3-small"


def test_dimension_is_discovered(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.dimension = 5
    embedder = embedder_for(server, remote_settings(url))
    with pytest.raises(ServiceUnavailable, match="has not answered yet"):
        _ = embedder.dimension
    assert run(embedder, lambda e: e.discover()) == 5
    assert embedder.dimension == 5


def test_discover_tolerates_an_api_that_is_down(remote_settings: Callable[..., Settings]) -> None:
    embedder = remote_embedder(remote_settings(f"http://127.0.0.1:{free_port()}/v1"))
    assert run(embedder, lambda e: e.discover()) is None


def test_retries_5xx_and_429_then_succeeds(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.script = [
        Reply(503, {"error": {"message": "warming up"}}),
        Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.05"}),
    ]
    vector = run(embedder_for(server, remote_settings(url)), lambda e: e.embed_query("hello"))
    assert vector.shape == (3,)
    assert len(server.requests) == 3


def test_gives_up_after_the_configured_retries(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.script = [Reply(500, {"error": {"message": "boom"}})] * 3
    embedder = embedder_for(server, remote_settings(url, upstream_max_retries=2))
    with pytest.raises(UpstreamError, match="answered 500: boom") as error:
        run(embedder, lambda e: e.embed_documents(["x"]))
    assert error.value.status == 502
    assert len(server.requests) == 3


def test_a_failing_batch_is_retried_alone_or_fails_the_whole_call(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    texts = ["연차 휴가", "병가 규정", "출장비 정산", "재택 근무", "보안 교육"]
    settings = remote_settings(url, embedding_batch_size=2)
    server.script = [Reply(), Reply(503, {"error": {"message": "잠시 과부하"}})]
    vectors = run(embedder_for(server, settings), lambda e: e.embed_documents(texts))
    assert vectors.shape == (5, 3)
    assert (
        [payload["input"] for _, payload in server.requests]
        == [
            texts[0:2],
            texts[2:4],
            texts[2:4],  # only the failed batch is sent again
            texts[4:5],
        ]
    )
    server.requests.clear()
    server.script = [Reply(), Reply(413, {"error": {"message": "입력이 너무 깁니다"}})]
    with pytest.raises(UpstreamError, match="answered 413: 입력이 너무 깁니다") as error:
        run(embedder_for(server, settings), lambda e: e.embed_documents(texts))
    assert error.value.status == 502
    assert len(server.requests) == 2  # the third batch is never sent


def test_a_retry_after_beyond_the_cap_fails_at_once(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.script = [Reply(429, {"error": {"message": "한도 초과"}}, {"Retry-After": "3600"})]
    with pytest.raises(UpstreamError, match="answered 429: 한도 초과"):
        run(embedder_for(server, remote_settings(url)), lambda e: e.embed_documents(["x"]))
    assert len(server.requests) == 1


def test_a_client_error_is_not_retried(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.script = [Reply(401, {"error": {"message": "Incorrect API key provided"}})]
    with pytest.raises(UpstreamError, match="401: Incorrect API key provided"):
        run(embedder_for(server, remote_settings(url)), lambda e: e.embed_documents(["x"]))
    assert len(server.requests) == 1


def test_unreachable_api_is_a_clear_upstream_error(
    remote_settings: Callable[..., Settings],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    embedder = remote_embedder(remote_settings(url, upstream_max_retries=1))
    with pytest.raises(UpstreamError, match="Cannot reach the embedding API"):
        run(embedder, lambda e: e.embed_documents(["x"]))


def test_a_slow_api_times_out(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    server.script = [Reply(error=httpx.ReadTimeout("no answer"))]
    settings = remote_settings(url, upstream_max_retries=0)
    with pytest.raises(UpstreamTimeout) as error:
        run(embedder_for(server, settings), lambda e: e.embed_documents(["x"]))
    assert error.value.status == 504


def test_malformed_answers_are_upstream_errors(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted
    one_vector = {"data": [{"index": 0, "embedding": [1.0, 0.0, 0.0]}]}
    server.script = [Reply(body={"unexpected": True}), Reply(body=one_vector)]

    async def work(embedder: RemoteEmbedder) -> None:
        with pytest.raises(UpstreamError, match="unreadable answer"):
            await embedder.embed_documents(["x"])
        with pytest.raises(UpstreamError, match="1 vectors for 2 inputs"):
            await embedder.embed_documents(["x", "y"])

    run(embedder_for(server, remote_settings(url)), work)


def test_a_changed_dimension_is_refused(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted

    async def work(embedder: RemoteEmbedder) -> None:
        await embedder.embed_documents(["x"])
        server.dimension = 4
        with pytest.raises(UpstreamError, match="4-dimensional vectors"):
            await embedder.embed_documents(["y"])

    run(embedder_for(server, remote_settings(url)), work)


def test_concurrent_queries_share_requests(
    scripted: tuple[ScriptedEmbeddings, str], remote_settings: Callable[..., Settings]
) -> None:
    server, url = scripted

    async def work(embedder: RemoteEmbedder) -> list[np.ndarray]:
        return await asyncio.gather(*(embedder.embed_query("q" * n) for n in range(1, 11)))

    vectors = run(embedder_for(server, remote_settings(url)), work)
    assert len(vectors) == 10
    assert len(server.requests) < 10


def test_token_counts_and_limits(remote_settings: Callable[..., Settings]) -> None:
    url = "http://127.0.0.1:9/v1"
    other = remote_embedder(remote_settings(url))
    minilm = remote_embedder(remote_settings(url, embedding_model="all-MiniLM-L6-v2"))
    assert (other.max_tokens, other.multilingual) == (512, True)
    assert (minilm.max_tokens, minilm.multilingual) == (254, False)
    assert minilm.count_tokens("hello world") == 2  # MiniLM's own tokenizer
    assert other.count_tokens("hello world") == approximate_tokens("hello world") == 2
    assert approximate_tokens("안녕하세요, 세계!") == 9  # a syllable or mark each
    assert approximate_tokens("internationalization 2024") == 6
    for embedder in (other, minilm):
        asyncio.run(embedder.close())


def test_remote_minilm_without_the_packaged_model_counts_approximately(
    remote_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tokenizers` installed but not the `[torch]` extra's packaged MiniLM: the embedder still
    starts, counting tokens approximately (as it does without `tokenizers`)."""

    def missing() -> None:
        raise ValueError("needs the [torch] extra")

    monkeypatch.setattr("ragbridge.embeddings.local.packaged_minilm_path", missing)
    minilm = remote_embedder(
        remote_settings("http://127.0.0.1:9/v1", embedding_model="all-MiniLM-L6-v2")
    )
    assert minilm.count_tokens("안녕하세요, 세계!") == approximate_tokens("안녕하세요, 세계!") == 9
    asyncio.run(minilm.close())
