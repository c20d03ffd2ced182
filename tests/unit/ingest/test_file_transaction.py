"""A multi-record file (JSON, JSON Lines, CSV) is stored whole or not at all: a record that
fails to embed, or a limit hit halfway through the file, leaves the previous version as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.errors import PayloadTooLarge, UpstreamError
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.settings import Settings
from ragbridge.store.base import Vector
from ragbridge.store.sqlite import SqliteStore
from tests.support.embedders import DelegatingEmbedder

pytestmark = pytest.mark.anyio


class PoisonedEmbedder(DelegatingEmbedder):
    """The real embedder, except that a text containing `POISON` fails to embed (as a remote
    embedding API refusing one input would)."""

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        if any("POISON" in text for text in texts):
            raise UpstreamError("the embedding API refused an input")
        return await self.inner.embed_documents(texts)

    async def close(self) -> None:
        pass  # the test's embedder is closed by its fixture


def records(version: str, poison_at: int | None = None) -> str:
    rows = [
        {
            "제목": f"제품 {i}",
            "설명": f"{version}: 제품 {i}의 설명" + (" POISON" if i == poison_at else ""),
        }
        for i in range(1, 41)
    ]
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)


async def snapshot(store: SqliteStore) -> dict[str, str]:
    return {d.source: d.content_hash for d in await store.list_documents("kb")}


async def test_a_record_that_fails_to_embed_leaves_the_whole_file_as_it_was(
    store: SqliteStore,
    embedder: Embedder,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    # embed_unreadable: the English-only test embedder would otherwise skip these Korean records
    settings = make_settings(embed_unreadable=True)
    pipeline = IngestPipeline(store, PoisonedEmbedder(embedder), settings)
    path = tmp_path / "catalogue.jsonl"
    path.write_text(records("v1"), encoding="utf-8")
    assert (await pipeline.ingest_bytes("kb", path.name, path.read_bytes())).status == "added"
    before = await snapshot(store)
    assert len(before) == 40

    path.write_text(records("v2", poison_at=33), encoding="utf-8")
    with pytest.raises(UpstreamError):
        await pipeline.ingest_bytes("kb", path.name, path.read_bytes())
    assert await snapshot(store) == before


async def test_a_limit_hit_halfway_writes_nothing_of_the_file(
    store: SqliteStore, embedder: Embedder, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    pipeline = IngestPipeline(store, embedder, make_settings(ingest_max_record_bytes=2000))
    path = tmp_path / "table.csv"
    rows = [f"제품 {i},짧은 설명 {i}" for i in range(1, 31)]
    rows[20] = "제품 21," + "아주 긴 설명 " * 300
    path.write_text("제목,설명\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(PayloadTooLarge, match="RAGBRIDGE_INGEST_MAX_RECORD_BYTES=2000"):
        await pipeline.ingest_bytes("kb", path.name, path.read_bytes())
    assert await snapshot(store) == {}
