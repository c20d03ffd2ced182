"""The `sample` collection: a first start on an empty data dir ingests ragbridge's own docs in the
background, so a newcomer can ask `rag/sample` something (in Korean too) right away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from ragbridge.embeddings import create_embedder
from ragbridge.ingest.files import discover
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.sample import SAMPLE_COLLECTION, ingest_sample, sample_docs_dir
from ragbridge.settings import Settings
from ragbridge.store.sqlite import SqliteStore


def _sample(client: httpx.Client, timeout: float = 180.0) -> dict[str, Any]:
    """The `sample` collection once every doc is in it."""
    docs_dir = sample_docs_dir()
    assert docs_dir is not None
    expected = len(discover([docs_dir]).files)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = client.get("/v1/collections").json()["data"]
        found = [c for c in listed if c["name"] == SAMPLE_COLLECTION]
        if found and found[0]["document_count"] == expected:
            return dict(found[0])
        time.sleep(0.5)
    raise AssertionError(f"the sample collection did not get its {expected} docs in time")


@pytest.mark.slow
def test_first_start_ingests_the_docs_into_a_sample_collection(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ragbridge.sample")
    with (
        serve_app(make_settings(sample_collection=True)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        assert client.get("/health").status_code == 200  # served while ingest runs

        sample = _sample(client)
        assert sample["chunk_count"] >= sample["document_count"] >= 4
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert "rag/sample" in models

        body = {
            "model": "rag/sample",
            "messages": [
                {"role": "user", "content": "한국어 문서는 어떤 형태소 분석기로 나누나요?"}
            ],
        }
        answer = client.post("/v1/chat/completions", json=body).json()
        assert answer["sources"][0]["source"]["name"] == "시작하기.md"
        assert "Kiwi" in answer["choices"][0]["message"]["content"]

    messages = [r.getMessage() for r in caplog.records if r.name == "ragbridge.sample"]
    assert any(
        m.startswith(f"ingested {sample['document_count']} docs into the sample collection")
        and "RAGBRIDGE_SAMPLE_COLLECTION=false" in m
        for m in messages
    ), messages


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_store_with_collections_of_its_own_gets_no_sample(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(sample_collection=True)
    settings.data_dir.mkdir(parents=True)
    store = SqliteStore(settings.data_dir / "ragbridge.db")
    await store.open()
    try:
        await store.create_collection("handbook", "all-MiniLM-L6-v2", 384)
        pipeline = IngestPipeline(store, create_embedder(settings), settings)

        assert await ingest_sample(store, pipeline) is None
        assert [c.name for c in await store.list_collections()] == ["handbook"]
    finally:
        await store.close()


def test_a_checkout_finds_its_docs_in_english_and_korean() -> None:
    docs = sample_docs_dir()

    assert docs is not None
    names = {file.source for file in discover([docs]).files}
    assert {"getting-started.md", "ko/시작하기.md"} <= names
