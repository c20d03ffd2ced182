"""Load → split → embed → upsert, idempotent by content hash: a file's documents are written in
one transaction once all are embedded (a failed file leaves the store as it was), and the files
of one run are loaded concurrently and embedded together. See docs/ingest.md."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np

from ragbridge.embeddings.base import Embedder
from ragbridge.errors import RagbridgeError, ServiceUnavailable
from ragbridge.ingest.batches import ChunkBatcher
from ragbridge.ingest.chunks import Chunker, Prepared, document_id
from ragbridge.ingest.documents import LoadedDocument, sha256
from ragbridge.ingest.files import SourceFile, read_source
from ragbridge.ingest.limits import IngestLimits
from ragbridge.ingest.loaders import detect_format
from ragbridge.ingest.quiet import load_quietly
from ragbridge.ingest.results import IngestProgress, IngestResult, IngestStatus
from ragbridge.ingest.splitter import TextSplitter
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from ragbridge.store.base import (
    CollectionInfo,
    DocumentRecord,
    DocumentUpsert,
    Store,
    Vector,
)
from ragbridge.text.scripts import dense_reads_query

log = logging.getLogger(__name__)

RECORD_FORMATS = frozenset({"json", "jsonl", "csv"})
"""Formats whose files may hold many documents (one per record or row)."""


@dataclass(frozen=True)
class _Run:
    """What the files of one call share: slots for reading, loading and splitting
    (`ingest_workers`), and the batcher that embeds their chunks together."""

    slots: asyncio.Semaphore
    batcher: ChunkBatcher
    progress: IngestProgress | None


@dataclass(frozen=True)
class _Queued:
    """A file split, its chunks queued for embedding, waiting to be written."""

    file_hash: str
    documents: list[LoadedDocument]
    previous: dict[str, DocumentRecord]
    prepared: list[Prepared]
    readable: list[bool]
    """Per chunk: whether the model reads it (the others get a zero row)."""
    pending: list[asyncio.Future[Vector]]
    warning: str | None


class IngestPipeline:
    """Turns files and uploads into stored, embedded chunks."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.limits = IngestLimits.from_settings(settings)
        self._chunker: Chunker | None = None
        self._sources: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock]
        self._sources = weakref.WeakValueDictionary()  # a source's lock lives while in use

    @property
    def chunker(self) -> Chunker:
        """Chunks by this embedder's tokenizer and limits (made on first use)."""
        if self._chunker is None:
            splitter = TextSplitter(
                self.embedder.count_tokens,
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
                max_tokens=self.embedder.max_tokens,
            )
            self._chunker = Chunker(splitter, self._readable)
        return self._chunker

    async def ensure_collection(self, collection: str) -> CollectionInfo:
        """Create `collection` for this embedder, or check that it was made with the same model;
        raises `EmbeddingMismatch` when it was not."""
        try:  # the splitter and the dimension may load the model: off the event loop
            dimension = await asyncio.to_thread(lambda: (self.chunker, self.embedder.dimension)[1])
        except ServiceUnavailable:  # a remote model tells its dimension by answering once
            dimension = int((await self.embedder.embed_documents(["ragbridge"])).shape[1])
        return await self.store.create_collection(collection, self.embedder.name, dimension)

    async def ingest_bytes(
        self,
        collection: str,
        filename: str,
        data: bytes,
        *,
        progress: IngestProgress | None = None,
    ) -> IngestResult:
        """Ingest an upload named `filename`; raises the domain error of bad content
        (`DocumentError`, `UnsupportedMediaType`) with the store left as it was."""
        async with self._collection_kept_if_filled(collection), self._run(progress) as run:
            return await self._ingest(collection, filename, data, run)

    async def ingest_files(
        self,
        collection: str,
        files: Sequence[SourceFile],
        *,
        progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest many files concurrently, their chunks embedded together; a file that fails
        gets a `failed` result and the others go on. Results come in the order of `files`."""
        async with self._collection_kept_if_filled(collection), self._run(progress) as run:
            ingests = (self._ingest_reporting_failure(collection, file, run) for file in files)
            return list(await asyncio.gather(*ingests))

    @asynccontextmanager
    async def _run(self, progress: IngestProgress | None) -> AsyncIterator[_Run]:
        """The slots and the batcher that the files of one call share."""
        step = max(1, self.settings.embedding_batch_size) * 4
        embedded = progress.chunks_embedded if progress is not None else None
        batcher = ChunkBatcher(self.embedder.embed_documents, step, embedded)
        try:
            yield _Run(asyncio.Semaphore(max(1, self.settings.ingest_workers)), batcher, progress)
        finally:
            await batcher.close()

    @asynccontextmanager
    async def _collection_kept_if_filled(self, collection: str) -> AsyncIterator[None]:
        """Create `collection` if new (see `ensure_collection`); one made here that is
        still empty afterwards (every file failed) is deleted again: it never shows as a model."""
        existed = await self.store.get_collection(collection) is not None
        await self.ensure_collection(collection)
        try:
            yield
        finally:
            if not existed:
                info = await self.store.get_collection(collection)
                if info is not None and info.document_count == 0:
                    await self.store.delete_collection(collection)

    async def _ingest_reporting_failure(
        self, collection: str, file: SourceFile, run: _Run
    ) -> IngestResult:
        """`_ingest`, a failure as a `failed` result; each result goes to the run's progress."""
        try:
            result = await self._ingest(collection, file.source, file, run)
        except RagbridgeError as exc:
            reason, kind = exc.message.removeprefix(f"{file.source}: "), type(exc).__name__
            result = IngestResult(file.source, "failed", error=reason, error_type=kind)
        except Exception as exc:  # a parser bug must not stop the other files
            log.exception("ingest of %s failed", file.source)
            reason, kind = f"{type(exc).__name__}: {exc}", "InternalError"
            result = IngestResult(file.source, "failed", error=reason, error_type=kind)
        if run.progress is not None:
            run.progress.file_done(result)
        return result

    async def _ingest(
        self, collection: str, source: str, data: bytes | SourceFile, run: _Run
    ) -> IngestResult:
        """Read, load and split in one of the run's slots and queue the chunks; the slot is
        free for the next file while they are embedded, then the file is written. The result
        is counted in the metrics by status (an exception counts as failed)."""
        lock = self._sources.setdefault((collection, source), asyncio.Lock())
        try:
            async with lock:  # ingests of one source run one after the other
                async with run.slots:
                    if isinstance(data, SourceFile):
                        data = await read_source(data)
                    result = await self._load_and_queue(collection, source, data, run)
                if isinstance(result, _Queued):
                    result = await self._write(collection, source, result)
        except Exception:
            self.metrics.count_ingest("failed")
            raise
        self.metrics.count_ingest(result.status)
        return result

    async def _load_and_queue(
        self, collection: str, source: str, data: bytes, run: _Run
    ) -> IngestResult | _Queued:
        """The file's changed documents split and queued for embedding, or the result of a
        file that is unchanged."""
        file_hash, fmt = await asyncio.to_thread(
            lambda: (sha256(data), detect_format(data, source))  # up to the upload limit
        )
        chunking = self.chunker.splitter.config
        previous = await self._previous(collection, source, fmt)
        if previous and all(
            record.metadata.get("file_hash") == file_hash
            and record.metadata.get("chunking") == chunking
            for record in previous.values()
        ):
            return IngestResult(source, "unchanged", documents=tuple(previous.values()))

        documents, warning = await asyncio.to_thread(load_quietly, data, source, self.limits, fmt)
        if warning:
            log.warning("%s: %s", source, warning)
        changed = [
            document
            for document in documents
            if not self.chunker.is_current(
                previous.get(document_id(collection, document.source)), document
            )
        ]
        prepared = await asyncio.to_thread(self.chunker.prepare, changed, source)
        chunks = [chunk for item in prepared for chunk in item.chunks]
        readable = [chunk.metadata.get("dense", True) is not False for chunk in chunks]
        wanted = [chunk.text for chunk, ok in zip(chunks, readable, strict=True) if ok]
        if run.progress is not None and not all(readable):
            run.progress.chunks_embedded(readable.count(False))  # stored without a vector
        step = run.batcher.size
        pending = [
            await run.batcher.submit(wanted[i : i + step]) for i in range(0, len(wanted), step)
        ]
        return _Queued(file_hash, documents, previous, prepared, readable, pending, warning)

    async def _write(self, collection: str, source: str, queued: _Queued) -> IngestResult:
        """Once embedded, write the file's documents in one transaction and delete its vanished
        records."""
        vectors = await self._vectors(queued)
        upserts: list[DocumentUpsert] = []
        offset = 0
        for item in queued.prepared:
            record = self.chunker.record(collection, source, queued.file_hash, item.document)
            count = len(item.chunks)
            upserts.append((record, item.chunks, vectors[offset : offset + count]))
            offset += count
        previous = queued.previous
        current = [document_id(collection, document.source) for document in queued.documents]
        stale = sorted(set(previous) - set(current))
        changed = bool(upserts or stale)
        written = await self.store.replace_documents(collection, upserts, stale) if changed else []
        stored = {record.id: record for record in written}
        status: IngestStatus = ("updated" if previous else "added") if changed else "unchanged"
        kept = tuple(r for i in current if (r := stored.get(i) or previous.get(i)) is not None)
        warning = queued.warning
        return IngestResult(source, status, offset, kept, removed=len(stale), warning=warning)

    async def _previous(self, collection: str, source: str, fmt: str) -> dict[str, DocumentRecord]:
        """The stored documents that came from the file `source`."""
        if fmt in RECORD_FORMATS:
            records = await self.store.list_documents(collection)
            return {r.id: r for r in records if r.metadata.get("file") == source}
        record = await self.store.get_document(collection, document_id(collection, source))
        return {record.id: record} if record is not None else {}

    def _readable(self, text: str) -> bool:
        """Whether the embedder reads `text` (an English-only model: mostly Latin script), or
        the user asked for vectors of everything (`embed_unreadable`)."""
        return self.settings.embed_unreadable or dense_reads_query(self.embedder.multilingual, text)

    async def _vectors(self, queued: _Queued) -> Vector:
        """The file's vectors once embedded; zero rows for the chunks the model cannot read
        (dense search ranks them last)."""
        parts = await asyncio.gather(*queued.pending)
        if all(queued.readable):
            return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        vectors = np.zeros((len(queued.readable), self.embedder.dimension), dtype=np.float32)
        if parts:
            vectors[np.asarray(queued.readable)] = np.concatenate(parts)
        return vectors
