"""An ingest progress receiver for tests."""

from __future__ import annotations

from ragbridge.ingest.results import IngestResult


class Recorder:
    """An `IngestProgress` that keeps what it was told."""

    def __init__(self) -> None:
        self.chunks = 0
        self.files: list[IngestResult] = []

    def chunks_embedded(self, count: int) -> None:
        self.chunks += count

    def file_done(self, result: IngestResult) -> None:
        self.files.append(result)
