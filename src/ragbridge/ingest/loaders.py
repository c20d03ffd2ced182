"""Bytes in, documents out: pick a loader plugin by extension (or a built-in format by content
when the extension says nothing) and turn a file into `LoadedDocument`s made of sections with
page and heading path. Formats are plugins: see `ragbridge.plugins` and docs/plugins.md."""

from __future__ import annotations

import contextlib
import json
from pathlib import PurePosixPath

from ragbridge import plugins
from ragbridge.errors import DocumentError, UnsupportedMediaType
from ragbridge.ingest.documents import LoadedDocument, decode_text
from ragbridge.ingest.limits import DEFAULT_LIMITS, IngestLimits


def extension_formats() -> dict[str, str]:
    """Extension → format, from the registered loaders; a folder walk takes only these."""
    formats: dict[str, str] = {}
    for name, loader in plugins.loaders().items():
        for extension in loader.extensions:
            formats[extension.lower()] = name  # later (third-party) loaders win
    return formats


def supported_extensions() -> str:
    """The extensions ragbridge reads, for messages (`.csv .docx …`)."""
    return " ".join(sorted(extension_formats()))


def detect_format(data: bytes, source: str) -> str:
    """The loader for `source` by extension, else a built-in format guessed from content: PDF
    and DOCX by signature, JSON and HTML by shape, else text; other binary content is an
    unsupported type."""
    if fmt := extension_formats().get(PurePosixPath(source).suffix.lower()):
        return fmt
    if data[:4096].lstrip().startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04") and b"word/" in data:
        return "docx"
    try:
        text = decode_text(data, source)
    except DocumentError:
        raise UnsupportedMediaType(
            f"{source}: unsupported file type; supported: {supported_extensions()}",
            code="unsupported_file_type",
        ) from None
    stripped = text.lstrip()[:512].lower()
    if stripped.startswith(("{", "[")):
        # (JSON too deep for Python's parser is not JSON to us.)
        with contextlib.suppress(ValueError, RecursionError):
            json.loads(text)
            return "json"
    if stripped.startswith(("<!doctype html", "<html")):
        return "html"
    return "text"


def load(
    data: bytes, source: str, limits: IngestLimits = DEFAULT_LIMITS, fmt: str | None = None
) -> list[LoadedDocument]:
    """Read `data` (a file named `source`, of format `fmt` if already detected) into documents.
    Raises `DocumentError` for empty, corrupt, encrypted or unreadable content,
    `UnsupportedMediaType` for binary formats ragbridge does not read, `PayloadTooLarge` or
    `DocumentError` past `limits`."""
    if not data.strip():
        raise DocumentError(f"{source}: the file is empty", code="empty_document")
    fmt = fmt or detect_format(data, source)
    loader = plugins.require(plugins.loaders(), "ragbridge.loaders", fmt)
    return loader.read(data, source, limits)
