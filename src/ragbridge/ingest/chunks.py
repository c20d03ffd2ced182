"""Loaded documents to the chunks and records the store keeps (CPU work, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragbridge.ingest.documents import LoadedDocument, file_name, sha256
from ragbridge.ingest.splitter import TextSplitter
from ragbridge.retrieval.analyzer import analyze
from ragbridge.store.base import DocumentRecord, NewChunk


def document_id(collection: str, source: str) -> str:
    """Stable id of the document `source` in `collection`."""
    return sha256(f"{collection}\x00{source}")[:32]


@dataclass(frozen=True)
class Prepared:
    """A document and its chunks, ready to embed."""

    document: LoadedDocument
    chunks: list[NewChunk]


class Chunker:
    """Splits documents into chunks with keywords and metadata; `readable` says whether the
    model gets a chunk's text (the others are stored without a vector)."""

    def __init__(self, splitter: TextSplitter, readable: Callable[[str], bool]) -> None:
        self.splitter = splitter
        self.readable = readable

    def prepare(self, documents: Sequence[LoadedDocument], file: str) -> list[Prepared]:
        """The chunks of each document of the file `file` (those without text left out). Every
        chunk's `name` is the file's, so a `name` filter finds a CSV's rows too; a record's own
        part of its source (`row-3`) is kept as `record`."""
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
                if not self.readable(chunk.text):
                    metadata["dense"] = False  # no vector: the model cannot read this text
                keywords = " ".join(analyze("\n".join((*chunk.headings, chunk.text))))
                chunks.append(NewChunk(chunk.text, keywords, chunk.position, metadata))
            if chunks:
                prepared.append(Prepared(document, chunks))
        return prepared

    def is_current(self, stored: DocumentRecord | None, document: LoadedDocument) -> bool:
        """Whether `stored` is `document` as it is now, cut as this splitter cuts."""
        return (
            stored is not None
            and stored.content_hash == document.content_hash
            and stored.metadata.get("chunking") == self.splitter.config
        )

    def record(
        self, collection: str, file: str, file_hash: str, document: LoadedDocument
    ) -> DocumentRecord:
        """The store's record of `document`, read from the file `file`."""
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
