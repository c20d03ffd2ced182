"""A folder of many small files is embedded in shared calls (the chunks of several files in one
batch) with the multilingual USE, while each file is still written alone: a corrupt file and a
file whose chunk the embedder refuses fail alone, every other document is stored and found."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from ragbridge.embeddings.use import UseEmbedder
from ragbridge.errors import UpstreamError
from ragbridge.ingest.files import discover
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.settings import Settings
from ragbridge.store.base import Vector
from ragbridge.store.sqlite import SqliteStore
from tests.support import documents as generated
from tests.support.embedders import DelegatingEmbedder
from tests.support.progress import Recorder

pytestmark = pytest.mark.anyio

PLACES = [
    "한라산",
    "경복궁",
    "부산항",
    "설악산",
    "전주 한옥마을",
    "경주 불국사",
    "인천공항",
    "독도",
]


class CallRecorder(DelegatingEmbedder):
    """The real USE embedder; keeps the size of every document call, refuses `POISON`."""

    def __init__(self, inner: UseEmbedder) -> None:
        super().__init__(inner)
        self.calls: list[int] = []

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        self.calls.append(len(texts))
        if any("POISON" in text for text in texts):
            raise UpstreamError("the embedding API refused an input")
        return await self.inner.embed_documents(texts)


@pytest.fixture
async def use() -> AsyncIterator[UseEmbedder]:
    embedder = UseEmbedder(batch_size=4)
    yield embedder
    await embedder.close()


def note(index: int) -> bytes:
    """A short Korean note about one place (one or two chunks)."""
    place = PLACES[index % len(PLACES)]
    text = (
        f"{index}번 메모: {place}에 다녀왔습니다. 입장은 오전 {index % 12 + 1}시부터입니다.\n\n"
        f"{place} 근처 식당에서 {index}인분 비빔밥을 먹었어요. 다음에는 가족과 함께 오고 싶습니다."
    )
    return text.encode()


async def test_small_korean_files_share_batches_and_fail_alone(
    use: UseEmbedder,
    store: SqliteStore,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "notes"
    files = {f"note-{i:02d}.txt": note(i) for i in range(24)}
    files["broken.pdf"] = generated.corrupt_pdf_bytes()
    files["poisoned.txt"] = "이 파일의 내용은 POISON 때문에 임베딩이 거절됩니다.".encode()
    generated.write_files(folder, files)
    embedder = CallRecorder(use)
    # batch size 4: 4 x 4 = 16 chunks per shared call, far more than one note's two
    pipeline = IngestPipeline(store, embedder, make_settings(embedding_batch_size=4))
    progress = Recorder()

    results = await pipeline.ingest_files("notes", discover([folder]).files, progress=progress)

    by_source = {result.source: result for result in results}
    assert by_source["broken.pdf"].status == "failed"
    assert by_source["broken.pdf"].error_type == "DocumentError"
    assert by_source["poisoned.txt"].status == "failed"
    assert by_source["poisoned.txt"].error == "the embedding API refused an input"
    added = [name for name in files if name.startswith("note-")]
    assert all(by_source[name].status == "added" for name in added)
    stored = await store.list_documents("notes")
    assert sorted(document.source for document in stored) == added
    assert sorted(result.source for result in progress.files) == sorted(files)
    assert progress.chunks == sum(by_source[name].chunks for name in added)
    # chunks of several files went into one call (no single note has more than 2 chunks)
    assert max(by_source[name].chunks for name in added) <= 2
    assert max(embedder.calls) > 2

    query = await use.embed_query("설악산 입장 시간")
    hits = await store.dense_search("notes", query, 5)
    assert "설악산" in hits[0].chunk.text
