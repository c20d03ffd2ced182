"""Writes documents into a SQLite store forever; the crash test SIGKILLs it mid-write.

`python -m tests.store.sqlite_writer DB_PATH ROUND`: document `docN` (N cycling over a few ids)
is rewritten again and again; every chunk carries the version in its text, so a reader can tell
whether a document's chunks all come from one version.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from ragbridge.store.base import DocumentRecord, NewChunk
from ragbridge.store.sqlite import SqliteStore

DIM = 16
DOCUMENT_IDS = 7


def chunks_for(version: str, count: int) -> list[NewChunk]:
    return [
        NewChunk(f"{version} chunk {i}", f"{version} chunk common 문서", i, {"version": version})
        for i in range(count)
    ]


async def write_forever(path: Path, round_: int) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.create_collection("crash", "test-model", DIM)
    rng = np.random.default_rng(round_)
    step = 0
    while True:
        doc_id = f"doc{step % DOCUMENT_IDS}"
        version = f"r{round_}s{step}"
        count = int(rng.integers(50, 400))
        vectors = rng.normal(size=(count, DIM)).astype(np.float32)
        document = DocumentRecord(doc_id, "crash", f"{doc_id}.txt", version)
        await store.upsert_document(document, chunks_for(version, count), vectors)
        if step % 5 == 4:
            await store.delete_document("crash", f"doc{(step * 3) % DOCUMENT_IDS}")
        print(version, flush=True)
        step += 1


if __name__ == "__main__":
    asyncio.run(write_forever(Path(sys.argv[1]), int(sys.argv[2])))
