"""Load → split → embed → upsert, idempotent by content hash.

A document's id derives from its collection and source, so ingesting the same file again finds
its earlier version: unchanged content is skipped, changed content replaces the old chunks in one
transaction, and records that vanished from a JSON or CSV file are deleted. A file is read, split
and embedded completely before anything is written, and all of a file's documents (the records
of a JSON or CSV file) are written in one transaction, so a file that fails leaves the store as
it was. Ingests of one source are serialised (one finds what the other wrote: `added` once, then
`unchanged` or `updated`). Files of one run are processed concurrently (`ingest_workers`); one
bad file never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ragbridge.embeddings.base import Embedder
from ragbridge.errors import RagbridgeError, ServiceUnavailable
from ragbridge.ingest.batches import ChunkBatcher
from ragbridge.ingest.documents import LoadedDocument, file_name, sha256
from ragbridge.ingest.files import SourceFile, read_source
from ragbridge.ingest.limits import IngestLimits
from ragbridge.ingest.loaders import detect_format
from ragbridge.ingest.quiet import load_quietly
from ragbridge.ingest.splitter import TextSplitter
from ragbridge.retrieval.analyzer import analyze
from ragbridge.retrieval.hybrid import dense_reads_query
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from ragbridge.store.base import (
    CollectionInfo,
    DocumentRecord,
    DocumentUpsert,
    NewChunk,
    Store,
    Vector,
)

log = logging.getLogger(__name__)

IngestStatus = Literal["added", "updated", "unchanged", "failed"]
RECORD_FORMATS = frozenset({"json", "jsonl", "csv"})
"""Formats whose files may hold many documents (one per record or row)."""


@dataclass(frozen=True)
class IngestResult:
    """What ingesting one file did."""

    source: str
    status: IngestStatus
    chunks: int = 0
    """Chunks embedded and written by this run (0 when unchanged or failed)."""
    documents: tuple[DocumentRecord, ...] = ()
    """The file's documents as now stored (one, or one per record)."""
    removed: int = 0
    """Records no longer in the file, deleted from the store."""
    error: str | None = None
    """Why it failed, for people (the file is named by `source`)."""
    error_type: str | None = None
    """The domain error's class name (`DocumentError`, `UnsupportedMediaType`, ...)."""
    warning: str | None = None
    """The file's loader warnings (pypdf's and the like) as one line, when it had any."""


class IngestProgress(Protocol):
    """Receives progress while files are ingested (a progress bar, a log)."""

    def chunks_embedded(self, count: int) -> None: ...

    def file_done(self, result: IngestResult) -> None: ...


def document_id(collection: str, source: str) -> str:
    """Stable id of the document `source` in `collection`."""
    return sha256(f"{collection}\x00{source}")[:32]


@dataclass(frozen=True)
class _Prepared:
    document: LoadedDocument
    chunks: list[NewChunk]


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
    prepared: list[_Prepared]
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
        self._splitter: TextSplitter | None = None
        self._sources: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @property
    def splitter(self) -> TextSplitter:
        """The splitter for this embedder's tokenizer and limits (made on first use)."""
        if self._splitter is None:
            self._splitter = TextSplitter(
                self.embedder.count_tokens,
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
                max_tokens=self.embedder.max_tokens,
            )
        return self._splitter

    async def ensure_collection(self, collection: str) -> CollectionInfo:
        """Create `collection` for this embedder, or check that it was made with the same model;
        raises `EmbeddingMismatch` when it was not."""
        try:  # the splitter and the dimension may load the model: off the event loop
            dimension = await asyncio.to_thread(lambda: (self.splitter, self.embedder.dimension)[1])
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
            return await self._counted(self._ingest(collection, filename, data, run))

    async def ingest_file(
        self, collection: str, path: Path, *, source: str | None = None
    ) -> IngestResult:
        """Ingest one file, known by `source` (default: its name); raises like `ingest_bytes`."""
        file = SourceFile(path, source or path.name)
        async with self._collection_kept_if_filled(collection), self._run(None) as run:
            return await self._counted(self._ingest(collection, file.source, file, run))

    async def ingest_files(
        self,
        collection: str,
        files: Sequence[SourceFile],
        *,
        progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest many files concurrently, their chunks embedded together; a file that fails
        gets a `failed` result and the others go on. Results come in the order of `files`."""

        async def one(file: SourceFile, run: _Run) -> IngestResult:
            result = await self._counted(self._ingest_reporting_failure(collection, file, run))
            if progress is not None:
                progress.file_done(result)
            return result

        async with self._collection_kept_if_filled(collection), self._run(progress) as run:
            return list(await asyncio.gather(*(one(file, run) for file in files)))

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

    async def _counted(self, ingest: Awaitable[IngestResult]) -> IngestResult:
        """`ingest`'s result, counted in the metrics by status (an exception counts as failed)."""
        try:
            result = await ingest
        except Exception:
            self.metrics.count_ingest("failed")
            raise
        self.metrics.count_ingest(result.status)
        return result

    async def _ingest_reporting_failure(
        self, collection: str, file: SourceFile, run: _Run
    ) -> IngestResult:
        try:
            return await self._ingest(collection, file.source, file, run)
        except RagbridgeError as exc:
            reason, kind = exc.message, type(exc).__name__
        except Exception as exc:  # a parser bug must not stop the other files
            log.exception("ingest of %s failed", file.source)
            reason, kind = f"{type(exc).__name__}: {exc}", "InternalError"
        reason = reason.removeprefix(f"{file.source}: ")
        return IngestResult(file.source, "failed", error=reason, error_type=kind)

    @asynccontextmanager
    async def _one_at_a_time(self, collection: str, source: str) -> AsyncIterator[None]:
        """Hold the lock of one source: concurrent ingests of it run one after the other."""
        key = (collection, source)
        lock, users = self._sources.get(key, (asyncio.Lock(), 0))
        self._sources[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._sources[key]
            if users <= 1:
                del self._sources[key]
            else:
                self._sources[key] = (lock, users - 1)

    async def _ingest(
        self, collection: str, source: str, data: bytes | SourceFile, run: _Run
    ) -> IngestResult:
        """Read, load and split in one of the run's slots and queue the chunks; the slot is
        free for the next file while they are embedded, then the file is written."""
        async with self._one_at_a_time(collection, source):
            async with run.slots:
                if isinstance(data, SourceFile):
                    data = await read_source(data)
                queued = await self._load_and_queue(collection, source, data, run)
            if isinstance(queued, IngestResult):
                return queued
            return await self._write(collection, source, queued, await self._vectors(queued, run))

    async def _load_and_queue(
        self, collection: str, source: str, data: bytes, run: _Run
    ) -> IngestResult | _Queued:
        """The file's changed documents split and queued for embedding, or the result of a
        file that is unchanged."""
        file_hash, fmt = await asyncio.to_thread(_fingerprint, data, source)
        chunking = self.splitter.config
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
            if not self._is_current(previous, collection, document)
        ]
        prepared = await asyncio.to_thread(self._prepare, changed, source)
        chunks = [chunk for item in prepared for chunk in item.chunks]
        readable = [chunk.metadata.get("dense", True) is not False for chunk in chunks]
        wanted = [chunk.text for chunk, ok in zip(chunks, readable, strict=True) if ok]
        step = run.batcher.size
        pending = [await run.batcher.submit(wanted[i : i + step]) for i in range(0, len(wanted), step)]
        return _Queued(file_hash, documents, previous, prepared, readable, pending, warning)

    async def _write(
        self, collection: str, source: str, queued: _Queued, vectors: Vector
    ) -> IngestResult:
        """Write the file's documents in one transaction and delete its vanished records."""
        upserts: list[DocumentUpsert] = []
        offset = 0
        for item in queued.prepared:
            record = self._record(collection, source, queued.file_hash, item.document)
            count = len(item.chunks)
            upserts.append((record, item.chunks, vectors[offset : offset + count]))
            offset += count
        previous = queued.previous
        current = [document_id(collection, document.source) for document in queued.documents]
        stale = sorted(set(previous) - set(current))
        written = (
            await self.store.replace_documents(collection, upserts, stale)
            if upserts or stale
            else []
        )
        stored = {record.id: record for record in written}
        if not stored and not stale:
            status: IngestStatus = "unchanged"
        else:
            status = "updated" if previous else "added"
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

    def _prepare(self, documents: Sequence[LoadedDocument], file: str) -> list[_Prepared]:
        """Chunks with keywords and metadata (CPU work: runs in a worker thread).

        `name` is the file's name for every document of the file, so a `name` filter finds a
        CSV's rows too; a record's own part of its source (`row-3`) is kept as `record`.
        """
        prepared = []
        for document in documents:
            chunks = []
            record = document.source.removeprefix(f"{file}#")
            for chunk in self.splitter.split_document(document):
                metadata: dict[str, object] = {
                    "source": document.source,
                    "name": file_name(file),
                    "title": document.title,
                }
                if record != document.source:
                    metadata["record"] = record
                if chunk.page is not None:
                    metadata["page"] = chunk.page
                if chunk.headings:
                    metadata["headings"] = list(chunk.headings)
                if not self._readable(chunk.text):
                    metadata["dense"] = False  # no vector: the model cannot read this text
                keywords = " ".join(analyze("\n".join((*chunk.headings, chunk.text))))
                chunks.append(NewChunk(chunk.text, keywords, chunk.position, metadata))
            if chunks:
                prepared.append(_Prepared(document, chunks))
        return prepared

    def _readable(self, text: str) -> bool:
        """Whether the embedder reads `text` (an English-only model: mostly Latin script), or
        the user asked for vectors of everything (`embed_unreadable`)."""
        return self.settings.embed_unreadable or dense_reads_query(self.embedder.multilingual, text)

    async def _vectors(self, queued: _Queued, run: _Run) -> Vector:
        """The file's vectors once embedded; zero rows for the chunks the model cannot read
        (dense search ranks them last, retrieval's language gate never asks the model about
        them)."""
        parts = list(await asyncio.gather(*queued.pending))
        readable = queued.readable
        if parts and all(readable):
            return np.concatenate(parts) if len(parts) > 1 else parts[0]
        if not readable:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.zeros((len(readable), self.embedder.dimension), dtype=np.float32)
        if parts:
            vectors[np.asarray(readable)] = np.concatenate(parts)
        if run.progress is not None:
            run.progress.chunks_embedded(readable.count(False))
        return vectors

    def _is_current(
        self, previous: dict[str, DocumentRecord], collection: str, document: LoadedDocument
    ) -> bool:
        """Whether the store already holds `document`, cut as this splitter cuts."""
        record = previous.get(document_id(collection, document.source))
        return (
            record is not None
            and record.content_hash == document.content_hash
            and record.metadata.get("chunking") == self.splitter.config
        )

    def _record(
        self, collection: str, file: str, file_hash: str, document: LoadedDocument
    ) -> DocumentRecord:
        return DocumentRecord(
            id=document_id(collection, document.source),
            collection=collection,
            source=document.source,
            content_hash=document.content_hash,
            title=document.title,
            metadata={
                "file": file,
                "file_hash": file_hash,
                "format": document.format,
                "chunking": self.splitter.config,
            },
        )


def _fingerprint(data: bytes, source: str) -> tuple[str, str]:
    """The file's hash and format (CPU work on up to the upload limit: runs in a thread)."""
    return sha256(data), detect_format(data, source)


__all__ = [
    "IngestPipeline",
    "IngestProgress",
    "IngestResult",
    "SourceFile",
    "document_id",
]
