"""PDF and DOCX readers: PDF text page by page, DOCX paragraphs and tables under their headings."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from itertools import groupby

import docx
import pypdf
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

from ragbridge.errors import DocumentError
from ragbridge.ingest.documents import LoadedDocument, Section, whole_file
from ragbridge.ingest.limits import IngestLimits
from ragbridge.ingest.markup import HeadingPath

log = logging.getLogger(__name__)

_HEADING_STYLE = re.compile(r"^(?:heading|제목)\s*([1-9])$", re.IGNORECASE)


def read_pdf(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """PDF: one section per page with its 0-based page number; encrypted or corrupt is an error."""
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise FileNotDecryptedError("no user password opens it")
        limits.check_pages(source, len(reader.pages))
        sections = [
            Section(page.extract_text() or "", page=number)
            for number, page in enumerate(reader.pages)
        ]
        title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except FileNotDecryptedError as exc:
        raise DocumentError(
            f"{source}: the PDF is encrypted (password protected)", code="encrypted_document"
        ) from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise DocumentError(
            f"{source}: corrupt or unreadable PDF ({type(exc).__name__}: {exc})",
            code="corrupt_document",
        ) from exc
    if not any(section.text.strip() for section in sections):
        raise DocumentError(
            f"{source}: the PDF has no extractable text (scanned images need OCR first)",
            code="empty_document",
        )
    return whole_file(source, data, "pdf", sections, str(title) if title else None)


def _opens_without_password(reader: pypdf.PdfReader) -> bool:
    """Owner-password-only PDFs open with an empty user password."""
    try:
        return bool(reader.decrypt(""))
    except (DependencyError, PdfReadError, NotImplementedError) as exc:
        log.debug("PDF decryption failed: %s", exc)
        return False


def read_docx(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """DOCX: body paragraphs and tables in order, a new section at every heading. The zip is
    checked and inflated within `limits` first (a zip bomb is refused before it inflates)."""
    inflated = limits.inflate_zip(source, data)
    try:
        document = docx.Document(io.BytesIO(inflated))
        title = document.core_properties.title or ""
        sections = list(_docx_sections(document))
    except Exception as exc:  # zipfile, lxml and python-docx errors on damaged files
        raise DocumentError(
            f"{source}: corrupt or unreadable DOCX ({type(exc).__name__}: {exc})",
            code="corrupt_document",
        ) from exc
    first_heading = next((s.headings[0] for s in sections if s.headings), "")
    return whole_file(source, data, "docx", sections, title or first_heading)


def _docx_sections(document: DocxDocument) -> Iterator[Section]:
    path = HeadingPath()
    headings: tuple[str, ...] = ()
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.append(_table_text(block))
            continue
        text = block.text.strip()
        level = _heading_level(block)
        if level is None or not text:
            lines.append(text)
            continue
        yield Section("\n\n".join(lines).strip(), headings=headings)
        headings = path.enter(level, text)
        lines = [text]
    yield Section("\n\n".join(lines).strip(), headings=headings)


def _heading_level(paragraph: Paragraph) -> int | None:
    """1 for Title and Heading 1, N for Heading N, None for body text."""
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return 1
    match = _HEADING_STYLE.match(name.strip())
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
    """A table as lines of cells joined by ` | `, merged cells (repeated side by side) once."""
    lines = []
    for row in table.rows:
        cells = (" ".join(cell.text.split()) for cell in row.cells)
        lines.append(" | ".join(text for text, _ in groupby(cells)))
    return "\n".join(lines)
