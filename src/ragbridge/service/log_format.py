"""Log output for the `ragbridge` loggers: one JSON object per line, or readable text on a TTY.
Structured fields travel in `extra={"fields": {...}}`; the request middleware decides what goes
into a line (and keeps keys and user text out of it)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_HANDLER_NAME = "ragbridge"
_PLAIN = re.compile(r'[^\s"=]*')


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", **fields}` on one line; exceptions as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: msg key=value ...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", None) or {}
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{text} {pairs}" if pairs else text
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def _text_value(value: Any) -> str:
    """A field value on one line: quoted when it holds spaces, quotes, '=' or line breaks."""
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """Send `ragbridge.*` logs to stderr; JSON lines unless stderr is a terminal.

    Replaces the handler a previous call installed (tests build many apps in one process) and
    leaves other loggers alone. Records still propagate, so a root handler also sees them.
    """
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    logger = logging.getLogger("ragbridge")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
