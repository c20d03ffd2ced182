"""Loading a file without its parser's noise: what pypdf and friends log or `warnings.warn`
about odd objects ("Ignoring wrong pointing object 6 0") becomes one line per file that the
pipeline logs and reports, instead of flooding the CLI's output and the JSON log."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from logging.handlers import BufferingHandler

from ragbridge.ingest.documents import LoadedDocument
from ragbridge.ingest.limits import DEFAULT_LIMITS, IngestLimits
from ragbridge.ingest.loaders import load

# Libraries whose loggers talk while parsing a file.
PARSER_LOGGERS = ("pypdf", "PyPDF2", "docx", "bs4", "charset_normalizer")
_MAX_CHARS = 200
# One file at a time through the capture: `warnings.catch_warnings` is process-wide.
_capture = threading.Lock()


def load_quietly(
    data: bytes, source: str, limits: IngestLimits = DEFAULT_LIMITS, fmt: str | None = None
) -> tuple[list[LoadedDocument], str | None]:
    """`load(data, source, limits, fmt)` and its parsers' warnings as one line (None when there
    were none). Raises like `load`."""
    collector = BufferingHandler(capacity=sys.maxsize)  # keeps every record: never full
    collector.setLevel(logging.WARNING)
    loggers = [logging.getLogger(name) for name in PARSER_LOGGERS]
    with _capture, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = [(logger, logger.propagate) for logger in loggers]
        for logger in loggers:
            logger.addHandler(collector)
            logger.propagate = False
        try:
            documents = load(data, source, limits, fmt)
        finally:
            for logger, propagate in saved:
                logger.removeHandler(collector)
                logger.propagate = propagate
    messages = [record.getMessage() for record in collector.buffer]
    messages += [str(warning.message) for warning in caught]
    return documents, summarize(messages)


def summarize(messages: list[str]) -> str | None:
    """`3 parser warnings, first: Ignoring wrong pointing object 6 0` on one line."""
    distinct = list(dict.fromkeys(" ".join(m.split()) for m in messages if m.strip()))
    if not distinct:
        return None
    first = distinct[0] if len(distinct[0]) <= _MAX_CHARS else distinct[0][:_MAX_CHARS] + "…"
    if len(messages) == 1:
        return f"parser warning: {first}"
    return f"{len(messages)} parser warnings, first: {first}"
