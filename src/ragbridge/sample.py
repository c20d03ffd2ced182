"""The `sample` collection: a first run on an empty store ingests ragbridge's own docs in the
background, so a newcomer has something to ask about (in English and Korean) before adding
anything. `RAGBRIDGE_SAMPLE_COLLECTION=false` skips it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from ragbridge.ingest.files import discover
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.store.base import Store

log = logging.getLogger(__name__)

SAMPLE_COLLECTION = "sample"


def sample_docs_dir() -> Path | None:
    """The docs shipped in the wheel (`ragbridge/sample_docs`), else a checkout's `docs/`."""
    package = Path(__file__).resolve().parent
    candidates = (package / "sample_docs", package.parents[1] / "docs")
    return next((candidate for candidate in candidates if candidate.is_dir()), None)


async def ingest_sample(
    store: Store, pipeline: IngestPipeline, docs: Path | None = None
) -> int | None:
    """Ingest `docs` (default: `sample_docs_dir()`) into `sample` when the store holds no other
    collection. Returns the documents now in it, or None when skipped.

    An existing `sample` is brought up to date (unchanged files cost a hash each), so a run cut
    short, or a newer ragbridge's docs, are completed at the next start.
    """
    if any(info.name != SAMPLE_COLLECTION for info in await store.list_collections()):
        return None
    folder = docs or sample_docs_dir()
    if folder is None:
        log.warning("no docs found to build the sample collection from; skipped")
        return None
    results = await pipeline.ingest_files(SAMPLE_COLLECTION, discover([folder]).files)
    for result in results:
        if result.status == "failed":
            log.warning("sample collection: %s skipped: %s", result.source, result.error)
    ingested = sum(len(result.documents) for result in results if result.status != "failed")
    if all(result.status == "unchanged" for result in results):
        log.info("the sample collection is up to date (%d docs)", ingested)
    else:
        log.info(
            "ingested %d docs into the sample collection "
            "(set RAGBRIDGE_SAMPLE_COLLECTION=false to skip)",
            ingested,
        )
    return ingested


async def _ingest_logging_failure(store: Store, pipeline: IngestPipeline) -> None:
    try:
        await ingest_sample(store, pipeline)
    except Exception:
        log.exception("could not build the sample collection")


@contextlib.asynccontextmanager
async def sample_in_background(store: Store, pipeline: IngestPipeline) -> AsyncIterator[None]:
    """Build the sample collection in a task while the app serves; cancelled on shutdown."""
    task = asyncio.create_task(_ingest_logging_failure(store, pipeline))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
