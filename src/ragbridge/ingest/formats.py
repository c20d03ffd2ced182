"""ragbridge's own file formats as loader plugins (registered in pyproject.toml under
`ragbridge.loaders`, the same way a third-party format is)."""

from __future__ import annotations

from ragbridge.ingest.documents import LoadedDocument, Section, decode_text, whole_file
from ragbridge.ingest.limits import IngestLimits
from ragbridge.ingest.markup import read_html, read_markdown
from ragbridge.ingest.office import read_docx, read_pdf
from ragbridge.ingest.records import read_csv, read_json, read_jsonl
from ragbridge.plugins import LoaderPlugin


def read_text(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """Plain text: one section; the splitter finds paragraphs and sentences."""
    return whole_file(source, data, "text", [Section(decode_text(data, source))])


PDF = LoaderPlugin((".pdf",), read_pdf)
DOCX = LoaderPlugin((".docx",), read_docx)
HTML = LoaderPlugin((".html", ".htm", ".xhtml"), read_html)
MARKDOWN = LoaderPlugin((".md", ".markdown"), read_markdown)
TEXT = LoaderPlugin((".txt", ".text", ".rst", ".log"), read_text)
JSON = LoaderPlugin((".json",), read_json)
JSONL = LoaderPlugin((".jsonl", ".ndjson"), read_jsonl)
CSV = LoaderPlugin((".csv", ".tsv"), read_csv)
