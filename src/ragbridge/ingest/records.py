"""JSON, JSON Lines and CSV readers: one document per record, written as `field: value` lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from ragbridge.errors import DocumentError
from ragbridge.ingest.documents import LoadedDocument, Section, decode_text, sha256, whole_file
from ragbridge.ingest.limits import IngestLimits

_TITLE_FIELDS = ("title", "name", "heading", "subject")
_DELIMITERS = ",;\t|"


def read_json(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """JSON: an object of records (all values objects, or all strings) or an array of objects
    gives one document per record; any other shape is one document."""
    value = _parse_json(decode_text(data, source), source, limits)
    records: Iterator[tuple[str, str | None, Any]]
    if isinstance(value, dict) and _is_record_map(value):
        records = ((f"{source}#{key}", str(key), record) for key, record in value.items())
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        records = ((f"{source}#row-{n}", None, item) for n, item in enumerate(value, start=1))
    else:
        return whole_file(source, data, "json", [Section("\n".join(flatten(value)))])
    limits.check_records(source, len(value))  # before any record is read
    return _non_empty(source, [_record(*record, "json", limits) for record in records])


def read_jsonl(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """JSON Lines: one document per non-blank line."""
    documents: list[LoadedDocument] = []
    for line_number, line in enumerate(decode_text(data, source).splitlines(), start=1):
        if line.strip():
            where = f"{source} line {line_number}"
            limits.check_record_size(where, line)
            value = _parse_json(line, where, limits)
            number = len(documents) + 1
            limits.check_records(source, number)
            documents.append(_record(f"{source}#row-{number}", None, value, "jsonl", limits))
    return _non_empty(source, documents)


def read_csv(data: bytes, source: str, limits: IngestLimits) -> list[LoadedDocument]:
    """CSV or TSV with a header row: one document per row, header names as field names."""
    text = decode_text(data, source)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:16384], delimiters=_DELIMITERS
        )
    except csv.Error:
        dialect = csv.excel_tab if source.lower().endswith(".tsv") else csv.excel
    rows: list[list[str]] = []
    csv.field_size_limit(limits.max_record_bytes)  # process-wide; a longer field is refused
    try:
        for row in csv.reader(io.StringIO(text), dialect):
            limits.check_record_size(f"{source} row {len(rows)}", "".join(row))
            rows.append(row)
            limits.check_records(source, len(rows) - 1)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            where = f"{source} row {len(rows)}"
            raise limits.record_too_large(where, "a field longer than the limit") from exc
        raise DocumentError(f"{source}: malformed CSV ({exc})", code="corrupt_document") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise DocumentError(f"{source}: the CSV has no data rows", code="empty_document")
    header = [name.strip() or f"column {i}" for i, name in enumerate(rows[0], start=1)]
    documents = []
    for number, row in enumerate(rows[1:], start=1):
        names = header + [f"column {i}" for i in range(len(header) + 1, len(row) + 1)]
        record = {name: cell.strip() for name, cell in zip(names, row, strict=False)}
        documents.append(_record(f"{source}#row-{number}", None, record, "csv", limits))
    return _non_empty(source, documents)


def flatten(value: Any, prefix: str = "") -> Iterator[str]:
    """`path: value` lines for nested JSON; lists of plain values join with commas."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        text = _plain(value)
        if text:
            yield f"{prefix}: {text}" if prefix else text


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(part for part in map(_plain, value) if part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _record(
    source: str, key: str | None, value: Any, fmt: str, limits: IngestLimits
) -> LoadedDocument:
    """One record as a document; its hash is of its own text, so siblings change independently."""
    body = "\n".join(flatten(value))
    text = f"{key}\n{body}" if key and body else body
    limits.check_record_size(source, text)
    title = _record_title(value) or key or source.replace("#row-", " row ")
    return LoadedDocument(source, title, (Section(text),) if text else (), sha256(text), fmt)


def _record_title(value: Any) -> str:
    """A title-like field (title, name, ...), else a short first field, else nothing."""
    if not isinstance(value, Mapping):
        return ""
    fields = {str(field).lower(): item for field, item in value.items()}
    candidates = [fields.get(name) for name in _TITLE_FIELDS] + list(value.values())[:1]
    for item in candidates:
        text = " ".join(str(item).split()) if isinstance(item, str | int) else ""
        if text and len(text) <= 120:
            return text
    return ""


def _is_record_map(value: dict[str, Any]) -> bool:
    """An object whose values are all objects or all strings is a map of records (a catalogue)."""
    values = list(value.values())
    return len(values) >= 2 and (
        all(isinstance(item, dict) for item in values)
        or all(isinstance(item, str) for item in values)
    )


def _non_empty(source: str, documents: list[LoadedDocument]) -> list[LoadedDocument]:
    kept = [document for document in documents if document.sections]
    if not kept:
        raise DocumentError(f"{source}: no records with text", code="empty_document")
    return kept


def _parse_json(text: str, where: str, limits: IngestLimits) -> Any:
    """The parsed JSON; too deep (for Python's parser, or past the limit) is a 422."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise limits.depth_error(where) from None
    except ValueError as exc:
        raise DocumentError(f"{where}: invalid JSON ({exc})", code="corrupt_document") from exc
    limits.check_depth(where, value)
    return value
