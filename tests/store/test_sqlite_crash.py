"""A writer process is SIGKILLed mid-ingest, several times over; the store must come back whole.

Whole means: every document committed before the kill is there, no document is half-written,
no chunk, vector or FTS row is orphaned, and the reopened store searches and writes normally.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ragbridge.store.sqlite import SqliteStore
from tests.store.sqlite_writer import DIM, DOCUMENT_IDS

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
State = dict[str, str]  # document id -> version (content hash)


def apply_step(state: State, round_: int, step: int) -> tuple[State, State]:
    """The states after step `step`'s upsert and after its (optional) delete, as the writer does."""
    upserted = dict(state)
    upserted[f"doc{step % DOCUMENT_IDS}"] = f"r{round_}s{step}"
    finished = dict(upserted)
    if step % 5 == 4:
        finished.pop(f"doc{(step * 3) % DOCUMENT_IDS}", None)
    return upserted, finished


def run_and_kill(db: Path, round_: int, commits: int) -> int:
    """Start the writer, wait for `commits` printed commits, SIGKILL it; the last step printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.store.sqlite_writer", str(db), str(round_)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        # The writer imports the same ragbridge as this test (a worktree's src/ on PYTHONPATH).
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert process.stdout is not None
    last = -1
    try:
        for _ in range(commits):
            line = process.stdout.readline()
            assert line, "writer exited early"
            last = int(line.strip().split("s")[-1])
        # Land the kill at a random point inside the next write.
        process.stdout.readline()
        last += 1
        time.sleep(random.uniform(0, 0.03))
    finally:
        process.send_signal(signal.SIGKILL)
        rest = process.communicate()[0]
    return last + len(rest.split())


def stored_state(db: Path) -> State:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, content_hash FROM documents").fetchall())


def check_consistent(db: Path) -> None:
    """Raw checks on the file: integrity, FTS, no orphans, every document from one version."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        collections = [row[0] for row in conn.execute("SELECT seq FROM collections")]
        for seq in collections:  # each collection's FTS index matches its rows
            conn.execute(f"INSERT INTO fts_c{seq} (fts_c{seq}) VALUES ('integrity-check')")
            keyword_rows = {row[0] for row in conn.execute(f"SELECT rowid FROM fts_c{seq}")}
            rows = conn.execute("SELECT seq FROM chunks WHERE collection_seq = ?", (seq,))
            assert keyword_rows == {row[0] for row in rows}
        orphans = conn.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d"
            " ON d.collection_seq = c.collection_seq AND d.id = c.document_id WHERE d.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0
        chunk_seqs = {row[0] for row in conn.execute("SELECT seq FROM chunks")}
        vector_rows = {row[0] for row in conn.execute("SELECT seq FROM vectors")}
        assert vector_rows == chunk_seqs
        documents = conn.execute("SELECT id, content_hash, chunk_count FROM documents").fetchall()
        for doc_id, version, chunk_count in documents:
            texts = [
                row[0]
                for row in conn.execute(
                    "SELECT text FROM chunks WHERE document_id = ? ORDER BY position", (doc_id,)
                )
            ]
            assert len(texts) == chunk_count
            assert texts == [f"{version} chunk {i}" for i in range(chunk_count)]
        vector_sizes = {
            row[0] for row in conn.execute("SELECT DISTINCT length(vector) FROM vectors")
        }
        assert vector_sizes <= {DIM * 4}
    finally:
        conn.close()


@pytest.mark.slow
async def test_store_survives_sigkill_during_ingest(tmp_path: Path) -> None:
    db = tmp_path / "ragbridge.db"
    state: State = {}
    for round_ in range(4):
        last_step = run_and_kill(db, round_, commits=random.randint(3, 8))

        # Committed work survives: the file holds the state after step `last_step`, or after
        # the upsert (but not the delete) of the step that was running, or after that step.
        before = dict(state)
        for step in range(last_step + 1):
            _, before = apply_step(before, round_, step)
        upserted, finished = apply_step(before, round_, last_step + 1)
        found = stored_state(db)
        assert found in (before, upserted, finished)
        check_consistent(db)
        state = found

    store = SqliteStore(db)
    await store.open()
    try:
        docs = await store.list_documents("crash")
        assert {d.id: d.content_hash for d in docs} == state
        total = sum(d.chunk_count for d in docs)
        hits = await store.dense_search("crash", np.ones(DIM, dtype=np.float32), total + 10)
        assert len(hits) == total
        keyword = await store.keyword_search("crash", ["문서"], total + 10)
        assert len(keyword) == total
        assert await store.delete_collection("crash") is True
    finally:
        await store.close()
    check_consistent(db)
