"""What an ingest leaves behind: no empty collection when every file failed, a file's `name` on
each of its records (so a `name` filter finds a CSV's rows), and parser warnings as one line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ragbridge.embeddings.base import Embedder
from ragbridge.errors import DocumentError
from ragbridge.ingest.files import SourceFile
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.store.sqlite import SqliteStore
from tests.support import documents as generated

pytestmark = pytest.mark.anyio

OFFICES = (
    "office,city,note\nHQ,Seoul,본사는 서울에 있습니다.\nLab,Busan,연구소는 부산에 있습니다.\n"
)


async def test_an_ingest_where_every_file_fails_leaves_no_collection(
    make_pipeline: Callable[..., IngestPipeline], store: SqliteStore, tmp_path: Path
) -> None:
    files = generated.write_files(
        tmp_path, {"empty.txt": b"", "broken.pdf": b"%PDF-1.7 not really", "빈.md": b"  "}
    )
    pipeline = make_pipeline()
    sources = [SourceFile(path, name) for name, path in files.items()]
    results = await pipeline.ingest_files("kb", sources)
    assert {r.status for r in results} == {"failed"}
    assert await store.get_collection("kb") is None

    with pytest.raises(DocumentError):  # one upload (the API's path): same
        await pipeline.ingest_bytes("kb", "empty.txt", b"")
    assert await store.get_collection("kb") is None

    await pipeline.ingest_bytes("kb", "offices.csv", OFFICES.encode())
    results = await pipeline.ingest_files("kb", sources)  # an existing collection stays
    assert (info := await store.get_collection("kb")) is not None and info.document_count == 2


async def test_a_name_filter_matches_every_record_of_a_file(
    make_pipeline: Callable[..., IngestPipeline], store: SqliteStore, embedder: Embedder
) -> None:
    pipeline = make_pipeline()
    await pipeline.ingest_bytes("kb", "offices.csv", OFFICES.encode())
    await pipeline.ingest_bytes("kb", "notes.txt", "사무실은 서울과 부산에 있습니다.".encode())
    query = await embedder.embed_query("사무실은 어디에 있나요?")

    hits = await store.dense_search("kb", query, 10, filters={"name": "offices.csv"})
    assert sorted(h.chunk.metadata["source"] for h in hits) == [
        "offices.csv#row-1",
        "offices.csv#row-2",
    ]
    assert {h.chunk.metadata["record"] for h in hits} == {"row-1", "row-2"}
    keyword = await store.keyword_search("kb", ["서울"], 10, filters={"name": "offices.csv"})
    assert [h.chunk.metadata["source"] for h in keyword] == ["offices.csv#row-1"]
    one_row = await store.dense_search("kb", query, 10, filters={"source": "offices.csv#row-2"})
    assert [h.chunk.metadata["source"] for h in one_row] == ["offices.csv#row-2"]
    assert np.isfinite(hits[0].score)


async def test_parser_warnings_become_one_clean_line_per_file(
    make_pipeline: Callable[..., IngestPipeline], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await make_pipeline().ingest_bytes(
        "kb", "warn.pdf", generated.pdf_with_parser_warnings_bytes()
    )
    assert result.status == "added"
    assert result.warning is not None and "\n" not in result.warning
    assert result.warning.startswith("2 parser warnings, first: incorrect startxref pointer")
    assert [r.name for r in caplog.records if "startxref" in r.getMessage()] == [
        "ragbridge.ingest.pipeline"
    ]
    (line,) = [r.getMessage() for r in caplog.records if "startxref" in r.getMessage()]
    assert line == f"warn.pdf: {result.warning}"
