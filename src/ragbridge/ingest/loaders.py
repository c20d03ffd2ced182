"""Bytes in, documents out: pick a reader by extension (or by content when the extension says
nothing) and turn a file into `LoadedDocument`s made of sections with page and heading path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePosixPath

from ragbridge.errors import DocumentError, UnsupportedMediaType
from ragbridge.ingest.documents import LoadedDocument, Section, decode_text, whole_file
from ragbridge.ingest.limits import DEFAULT_LIMITS, IngestLimits
from ragbridge.ingest.markup import read_html, read_markdown
from ragbridge.ingest.office import read_docx, read_pdf
from ragbridge.ingest.records import read_csv, read_json, read_jsonl

__all__ = [
    "EXTENSION_FORMATS",
    "IngestLimits",
    "LoadedDocument",
    "Section",
    "detect_format",
    "load",
]

Reader = Callable[[bytes, str], list[LoadedDocument]]

EXTENSION_FORMATS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}
"""Extensions read without sniffing; a folder walk takes only these."""


def read_text(data: bytes, source: str) -> list[LoadedDocument]:
    """Plain text: one section; the splitter finds paragraphs and sentences."""
    return whole_file(source, data, "text", [Section(decode_text(data, source))])


READERS: dict[str, Reader] = {
    "pdf": read_pdf,
    "docx": read_docx,
    "html": read_html,
    "markdown": read_markdown,
    "text": read_text,
    "json": read_json,
    "jsonl": read_jsonl,
    "csv": read_csv,
}


def detect_format(data: bytes, source: str) -> str:
    """The reader for `source`: by extension, else by sniffing the content."""
    fmt = EXTENSION_FORMATS.get(PurePosixPath(source).suffix.lower())
    return fmt or sniff_format(data, source)


def sniff_format(data: bytes, source: str) -> str:
    """Guess a format from content: PDF and DOCX by signature, JSON and HTML by shape, else text;
    binary content of any other kind is an unsupported type."""
    head = data[:4096].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04") and b"word/" in data:
        return "docx"
    try:
        text = decode_text(data, source)
    except DocumentError:
        raise UnsupportedMediaType(
            f"{source}: unsupported file type; supported: PDF, DOCX, HTML, Markdown, text, "
            "JSON, JSON Lines, CSV",
            code="unsupported_file_type",
        ) from None
    stripped = text.lstrip()[:512].lower()
    if stripped.startswith(("{", "[")):
        try:
            json.loads(text)
            return "json"
        except (ValueError, RecursionError):  # too deep for Python's parser: not JSON to us
            pass
    if stripped.startswith(("<!doctype html", "<html")):
        return "html"
    return "text"


LIMITED_READERS: dict[str, Callable[[bytes, str, IngestLimits], list[LoadedDocument]]] = {
    "pdf": read_pdf,
    "docx": read_docx,
    "json": read_json,
    "jsonl": read_jsonl,
    "csv": read_csv,
}
"""Readers that check `IngestLimits` (records, record size, nesting, pages, inflated size)."""


def load(
    data: bytes, source: str, limits: IngestLimits = DEFAULT_LIMITS, fmt: str | None = None
) -> list[LoadedDocument]:
    """Read `data` (a file named `source`, of format `fmt` if already detected) into documents.

    Raises `DocumentError` for empty, corrupt, encrypted or unreadable content,
    `UnsupportedMediaType` for binary formats ragbridge does not read, and `PayloadTooLarge` or
    `DocumentError` for a file past one of `limits`; messages name the file and the limit.
    """
    if not data.strip():
        raise DocumentError(f"{source}: the file is empty", code="empty_document")
    fmt = fmt or detect_format(data, source)
    limited = LIMITED_READERS.get(fmt)
    if limited is not None:
        return limited(data, source, limits)
    return READERS[fmt](data, source)
