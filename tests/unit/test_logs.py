"""Log lines: JSON objects with the structured fields, or key=value text."""

from __future__ import annotations

import json
import logging

from ragbridge.service.log_format import JsonFormatter, TextFormatter


def record(fields: dict[str, object] | None) -> logging.LogRecord:
    rec = logging.LogRecord("ragbridge.access", logging.INFO, __file__, 1, "request", (), None)
    if fields is not None:
        rec.fields = fields
    return rec


def test_json_line_carries_fields_and_keeps_korean_readable() -> None:
    line = JsonFormatter().format(record({"request_id": "r1", "status": 200, "q": "서울"}))
    assert "\n" not in line and "서울" in line
    parsed = json.loads(line)
    assert parsed["msg"] == "request" and parsed["logger"] == "ragbridge.access"
    assert parsed["request_id"] == "r1" and parsed["status"] == 200 and parsed["level"] == "info"


def test_text_line_lists_set_fields_only() -> None:
    line = TextFormatter().format(record({"request_id": "r1", "key": None, "status": 404}))
    assert line.endswith("ragbridge.access: request request_id=r1 status=404")
    assert TextFormatter().format(record(None)).endswith("ragbridge.access: request")


def test_text_values_cannot_forge_lines_or_fields() -> None:
    line = TextFormatter().format(record({"model": "x\nfake=1", "path": "/v1/a b"}))
    assert "\n" not in line
    assert line.endswith('request model="x\\nfake=1" path="/v1/a b"')
