"""What a reader makes of a file: documents of sections, plus the helpers every reader shares."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from charset_normalizer import from_bytes

from ragbridge.errors import DocumentError


@dataclass(frozen=True)
class Section:
    """A run of text that shares one page and one heading path."""

    text: str
    page: int | None = None
    """0-based page number (PDF), else None."""
    headings: tuple[str, ...] = ()
    """Enclosing headings, outermost first (DOCX, Markdown, HTML)."""


@dataclass(frozen=True)
class LoadedDocument:
    """One document read from a file: a whole file, or one JSON record or CSV row of it."""

    source: str
    """The file's relative path or upload name; records add `#key` or `#row-N`."""
    title: str
    sections: tuple[Section, ...]
    content_hash: str
    """sha256 of what this document was read from: the file's bytes, or the record's text."""
    format: str
    """Reader that produced it: pdf, docx, html, markdown, text, json, jsonl, csv."""

    @property
    def text(self) -> str:
        """All section texts, separated by blank lines."""
        return "\n\n".join(section.text for section in self.sections)


def sha256(data: bytes | str) -> str:
    """Hex sha256 of bytes, or of text as UTF-8."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def file_name(source: str) -> str:
    """The last path component of a source, for titles and messages."""
    return PurePosixPath(source).name or source


def whole_file(
    source: str, data: bytes, fmt: str, sections: Sequence[Section], title: str | None = None
) -> list[LoadedDocument]:
    """The one document a whole file makes; empty sections are dropped, none left is an error."""
    kept = tuple(s for s in sections if s.text.strip())
    if not kept:
        raise DocumentError(f"{source}: no text found in this {fmt} file", code="empty_document")
    clean_title = " ".join((title or "").split())[:300] or file_name(source)
    return [LoadedDocument(source, clean_title, kept, sha256(data), fmt)]


def decode_text(data: bytes, source: str) -> str:
    """Text from bytes in whatever encoding they are in: UTF-16 by its byte-order mark, UTF-8,
    else the encoding charset-normalizer detects. NUL bytes mean binary content, not text."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{source}: binary content, not text", code="unreadable_document")
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8-sig")
    best = from_bytes(data).best()
    if best is None:
        raise DocumentError(
            f"{source}: text encoding could not be detected", code="unreadable_document"
        )
    return str(best)
