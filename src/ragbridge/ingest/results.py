"""What ingesting a file reports: its result, and the progress callbacks of a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ragbridge.store.base import DocumentRecord

IngestStatus = Literal["added", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class IngestResult:
    """What ingesting one file did."""

    source: str
    status: IngestStatus
    chunks: int = 0
    """Chunks embedded and written by this run (0 when unchanged or failed)."""
    documents: tuple[DocumentRecord, ...] = ()
    """The file's documents as now stored (one, or one per record)."""
    removed: int = 0
    """Records no longer in the file, deleted from the store."""
    error: str | None = None
    """Why it failed, for people (the file is named by `source`)."""
    error_type: str | None = None
    """The domain error's class name (`DocumentError`, `UnsupportedMediaType`, ...)."""
    warning: str | None = None
    """The file's loader warnings (pypdf's and the like) as one line, when it had any."""


class IngestProgress(Protocol):
    """Receives progress while files are ingested (a progress bar, a log)."""

    def chunks_embedded(self, count: int) -> None: ...

    def file_done(self, result: IngestResult) -> None: ...
