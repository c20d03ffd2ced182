"""The limits on what a file may become, checked by the readers before the expensive step."""

from __future__ import annotations

import io
import zipfile

import pytest

from ragbridge.api.uploads import safe_upload_name
from ragbridge.errors import DocumentError, PayloadTooLarge
from ragbridge.ingest.limits import IngestLimits
from ragbridge.ingest.loaders import detect_format, load


def test_deep_json_without_an_extension_is_sniffed_as_text_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert detect_format(deep, "deep") == "text"
    with pytest.raises(DocumentError, match="RAGBRIDGE_INGEST_MAX_JSON_DEPTH=64"):
        load(deep, "deep.json")


def test_jsonl_limits_name_the_line_and_the_setting() -> None:
    limits = IngestLimits(max_records=3, max_record_bytes=100)
    lines = b'{"a": "\xea\xb0\x80"}\n' * 3
    assert len(load(lines, "ok.jsonl", limits)) == 3
    with pytest.raises(DocumentError, match="RAGBRIDGE_INGEST_MAX_RECORDS=3"):
        load(lines + b'{"a": 4}\n', "many.jsonl", limits)
    with pytest.raises(PayloadTooLarge, match=r"long.jsonl line 2: a record of \d+ bytes"):
        load(b'{"a": 1}\n{"b": "' + "가".encode() * 40 + b'"}\n', "long.jsonl", limits)


def docx_like(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:t>" + b"a" * size + b"</w:t>")
    return buffer.getvalue()


def test_zip_limits_by_total_and_by_ratio() -> None:
    small = IngestLimits(max_unzipped_bytes=10_000, max_zip_ratio=10_000)
    with pytest.raises(PayloadTooLarge, match="RAGBRIDGE_INGEST_MAX_UNZIPPED_BYTES=10000"):
        small.inflate_zip("big.docx", docx_like(20_000))
    strict = IngestLimits(max_zip_ratio=50)
    with pytest.raises(PayloadTooLarge, match="RAGBRIDGE_INGEST_MAX_ZIP_RATIO=50"):
        strict.inflate_zip("ratio.docx", docx_like(2 * 1024 * 1024))
    inflated = IngestLimits().inflate_zip("fine.docx", docx_like(5000))
    member = zipfile.ZipFile(io.BytesIO(inflated)).getinfo("word/document.xml")
    assert member.compress_type == zipfile.ZIP_STORED and member.file_size == 5011
    with pytest.raises(DocumentError, match="corrupt or unreadable DOCX"):
        IngestLimits().inflate_zip("junk.docx", b"PK\x03\x04 not a zip")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/x.txt", "etc/x.txt"),
        ("..\\..\\x.txt", "x.txt"),
        ("C:\\Users\\me\\보고서.pdf", "Users/me/보고서.pdf"),
        ("/abs/./a//b.md", "abs/a/b.md"),
        ("name\x00with\x1bcontrol.txt", "namewithcontrol.txt"),
        ("../..", ""),
    ],
)
def test_upload_names_are_safe_relative_paths(raw: str, safe: str) -> None:
    assert safe_upload_name(raw) == safe
