"""What one file may become once read: records, record size, nesting, pages, inflated size;
checked before the expensive step, so a hostile file is refused quickly with a 413 or 422 naming
the limit's setting. See docs/input-limits.md."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, fields
from typing import Any

from ragbridge.errors import DocumentError, PayloadTooLarge
from ragbridge.settings import Settings


@dataclass(frozen=True)
class IngestLimits:
    """The limits, defaults as in `Settings`."""

    max_records: int = 100_000
    max_record_bytes: int = 1024 * 1024
    max_json_depth: int = 64
    max_pdf_pages: int = 5000
    max_unzipped_bytes: int = 256 * 1024 * 1024
    max_zip_ratio: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        """Each limit from the setting of its name with `ingest_` in front."""
        return cls(
            **{field.name: getattr(settings, f"ingest_{field.name}") for field in fields(cls)}
        )

    def check_records(self, source: str, count: int) -> None:
        """Refuse a file with more records than `max_records` (422)."""
        if count > self.max_records:
            raise DocumentError(
                f"{source}: more than {self.max_records} records; the limit is "
                f"RAGBRIDGE_INGEST_MAX_RECORDS={self.max_records}",
                code="too_many_records",
            )

    def check_record_size(self, where: str, text: str) -> None:
        """Refuse one record whose text is over `max_record_bytes` in UTF-8 (413); UTF-8 takes at
        most 4 bytes a character, so only a text longer than a quarter of that is encoded."""
        if len(text) * 4 > self.max_record_bytes:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > self.max_record_bytes:
                raise self.record_too_large(where, f"a record of {size} bytes")

    def record_too_large(self, where: str, what: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"{where}: {what}; the limit is "
            f"RAGBRIDGE_INGEST_MAX_RECORD_BYTES={self.max_record_bytes}",
            code="record_too_large",
        )

    def depth_error(self, where: str) -> DocumentError:
        return DocumentError(
            f"{where}: JSON nested deeper than RAGBRIDGE_INGEST_MAX_JSON_DEPTH="
            f"{self.max_json_depth}",
            code="json_too_deep",
        )

    def check_depth(self, where: str, value: Any) -> None:
        """Refuse JSON nested deeper than `max_json_depth` (422); iterative, never recursion."""
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, dict | list):
                if depth > self.max_json_depth:
                    raise self.depth_error(where)
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)

    def check_pages(self, source: str, pages: int) -> None:
        """Refuse a PDF with more pages than `max_pdf_pages` (422)."""
        if pages > self.max_pdf_pages:
            raise DocumentError(
                f"{source}: {pages} pages; the limit is "
                f"RAGBRIDGE_INGEST_MAX_PDF_PAGES={self.max_pdf_pages}",
                code="too_many_pages",
            )

    def inflate_zip(self, source: str, data: bytes) -> bytes:
        """The zip (DOCX) `data` rewritten uncompressed, after refusing one whose members would
        inflate past `max_unzipped_bytes` in all, or one member past `max_zip_ratio` times its
        compressed size (413). The central directory is checked before anything is inflated;
        members are then inflated no further than the limit leaves, so sizes a hostile file
        misdeclares cannot cost more memory than the limit either."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
            for member in members:
                ratio = member.file_size / max(member.compress_size, 1)
                if member.file_size > 1024 * 1024 and ratio > self.max_zip_ratio:
                    raise PayloadTooLarge(
                        f"{source}: {member.filename} inflates {ratio:.0f}x; the limit is "
                        f"RAGBRIDGE_INGEST_MAX_ZIP_RATIO={self.max_zip_ratio}",
                        code="zip_bomb",
                    )
            declared = sum(member.file_size for member in members)
            if declared > self.max_unzipped_bytes:
                raise self._size_error(source, declared)
            out = io.BytesIO()
            total = 0
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as stored:
                for member in members:
                    with archive.open(member) as stream:  # one byte past what is left, at most
                        content = stream.read(self.max_unzipped_bytes - total + 1)
                    total += len(content)
                    if total > self.max_unzipped_bytes:
                        raise self._size_error(source, total)
                    stored.writestr(member.filename, content)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise DocumentError(
                f"{source}: corrupt or unreadable DOCX ({type(exc).__name__}: {exc})",
                code="corrupt_document",
            ) from exc
        return out.getvalue()

    def _size_error(self, source: str, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"{source}: inflates to more than {min(size, self.max_unzipped_bytes)} bytes; the "
            f"limit is RAGBRIDGE_INGEST_MAX_UNZIPPED_BYTES={self.max_unzipped_bytes}",
            code="unzipped_too_large",
        )


DEFAULT_LIMITS = IngestLimits()
