"""`ragbridge ingest` interrupted on the embedded store: SIGTERM stops it at a safe point, and
`kill -9` loses nothing that was stored; running the command again finishes the job. A full disk
during ingest fails the file with a clear error and leaves the store readable."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ragbridge.store import SQLITE_FILENAME
from tests.support.cli import ragbridge_command, run_ragbridge
from tests.support.upstream import ScriptedUpstream

FILES = 20
COLLECTION = "문서"


def write_corpus(folder: Path, count: int = FILES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        text = "".join(
            f"{i}번 문서의 {j}번째 문장입니다. 서울과 부산의 날씨는 오늘 맑습니다.\n"
            for j in range(40)
        )
        (folder / f"문서-{i:03d}.txt").write_text(text, encoding="utf-8")
    return folder


def ingest_env(upstream: ScriptedUpstream, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGBRIDGE_")}
    env.update(
        RAGBRIDGE_DATA_DIR=str(data_dir),
        RAGBRIDGE_EMBEDDING_BASE_URL=upstream.url,
        RAGBRIDGE_EMBEDDING_MODEL="stub-embed",
        RAGBRIDGE_EMBEDDING_BATCH_SIZE="8",
        RAGBRIDGE_INGEST_WORKERS="2",
    )
    return env


def start_ingest(env: dict[str, str], corpus: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ragbridge_command("ingest", corpus, "-c", COLLECTION),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_documents(data_dir: Path) -> int:
    """Documents committed so far (read beside the running ingest; 0 before the file exists)."""
    path = data_dir / SQLITE_FILENAME
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def store_state(data_dir: Path) -> tuple[int, int]:
    """(documents, chunks) after checking the database file and every document's chunks."""
    with sqlite3.connect(data_dir / SQLITE_FILENAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute(
            "SELECT d.id, d.chunk_count, (SELECT count(*) FROM chunks c"
            " WHERE c.document_id = d.id AND c.collection_seq = d.collection_seq)"
            " FROM documents d"
        ).fetchall()
        half_written = [(doc, claimed, held) for doc, claimed, held in rows if claimed != held]
        assert half_written == [], f"documents whose chunks are not all there: {half_written}"
        orphans = db.execute(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d"
            " WHERE d.id = c.document_id AND d.collection_seq = c.collection_seq)"
        ).fetchone()[0]
        assert orphans == 0
        return len(rows), sum(held for _, _, held in rows)


def interrupt_midway(
    upstream: ScriptedUpstream,
    tmp_path: Path,
    signum: int,
    *,
    database_url: str | None = None,
    committed: Callable[[], int] | None = None,
) -> tuple[subprocess.Popen[str], float, Path, dict[str, str]]:
    """Start an ingest (into `database_url` when given), send `signum` once `committed()` files
    are stored (default: the SQLite file's documents); (process, seconds to exit, corpus, env)."""
    corpus = write_corpus(tmp_path / "corpus")
    data_dir = tmp_path / "data"
    env = ingest_env(upstream, data_dir)
    if database_url:
        env["RAGBRIDGE_DATABASE_URL"] = database_url
    count = committed or (lambda: stored_documents(data_dir))
    upstream.embedding_delay = 0.3  # an ingest that lasts long enough to be interrupted
    process = start_ingest(env, corpus, tmp_path)
    try:
        assert upstream.wait_for(lambda: count() >= 3, timeout=240), (
            "the ingest never stored a file"
        )
        sent = time.monotonic()
        process.send_signal(signum)
        process.wait(timeout=30)
        exited = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process, exited, corpus, env


def finish_again(env: dict[str, str], corpus: Path, cwd: Path) -> tuple[str, float]:
    started = time.monotonic()
    done = run_ragbridge("ingest", corpus, "-c", COLLECTION, env=env, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, time.monotonic() - started


def test_sigterm_stops_an_ingest_at_a_safe_point(
    upstream: ScriptedUpstream, tmp_path: Path, record_fault: Callable[..., None]
) -> None:
    process, exited, corpus, env = interrupt_midway(upstream, tmp_path, signal.SIGTERM)
    out = process.stdout.read() if process.stdout else ""
    assert process.returncode == 143, out + (process.stderr.read() if process.stderr else "")
    assert "Stopped by SIGTERM" in out
    assert exited < 10.0  # the next await; a loaded CI machine may take seconds to get there
    stored, _ = store_state(tmp_path / "data")
    assert 3 <= stored < FILES  # it really was stopped midway
    upstream.embedding_delay = 0.0
    summary, rerun = finish_again(env, corpus, tmp_path)
    assert f"{stored} unchanged" in summary
    documents, _ = store_state(tmp_path / "data")
    assert documents == FILES
    record_fault(
        "SIGTERM during `ragbridge ingest` (sqlite)",
        requests=FILES,
        failed=0,
        lost=FILES - documents,
        recover_s=exited,
        note=f"exited {exited:.1f} s after the signal with {stored}/{FILES} files stored whole; "
        f"re-run added the rest in {rerun:.1f} s",
    )


def rerun_completes(
    upstream: ScriptedUpstream,
    interrupted: tuple[subprocess.Popen[str], float, Path, dict[str, str]],
    cwd: Path,
    documents: Callable[[], int],
    record_fault: Callable[..., None],
    store: str,
) -> None:
    """After a kill -9: `documents()` (which checks every file is whole) counts what was kept,
    a re-run adds exactly the rest, and the row is recorded."""
    _, _, corpus, env = interrupted
    stored = documents()
    assert 0 < stored < FILES, "the kill did not land mid-ingest"
    upstream.embedding_delay = 0.0
    summary, rerun = finish_again(env, corpus, cwd)
    match = re.search(r"(\d+) added", summary)
    assert match and int(match.group(1)) == FILES - stored, summary
    assert f"{stored} unchanged" in summary
    complete = documents()
    assert complete == FILES
    record_fault(
        f"kill -9 during `ragbridge ingest` ({store})",
        requests=FILES,
        failed=0,
        lost=FILES - complete,
        recover_s=rerun,
        note=f"{stored}/{FILES} files stored whole at the kill; re-run took {rerun:.1f} s",
    )


def test_kill_9_during_ingest_loses_nothing_stored(
    upstream: ScriptedUpstream, tmp_path: Path, record_fault: Callable[..., None]
) -> None:
    interrupted = interrupt_midway(upstream, tmp_path, signal.SIGKILL)
    # readable, consistent, no half documents
    rerun_completes(
        upstream,
        interrupted,
        tmp_path,
        lambda: store_state(tmp_path / "data")[0],
        record_fault,
        "sqlite",
    )


def test_a_full_disk_fails_the_ingest_cleanly(
    upstream: ScriptedUpstream, tmp_path: Path, record_fault: Callable[..., None]
) -> None:
    """A 1 MiB tmpfs as the data dir: the ingest fails with an error, the store stays readable,
    and once space is freed (a bigger mount) the same command finishes."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {done.stderr.strip()}")
    try:
        corpus = write_corpus(tmp_path / "corpus", count=FILES)
        data_dir = mount / "data"
        env = ingest_env(upstream, data_dir)
        process = start_ingest(env, corpus, tmp_path)
        out, _ = process.communicate(timeout=300)
        assert process.returncode != 0, "the ingest claimed success on a full disk"
        assert "disk is full" in out, out[-2000:]  # each failed file is named with the reason
        stored, _ = store_state(data_dir)
        started = time.monotonic()
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        finish_again(env, corpus, tmp_path)
        recovered = time.monotonic() - started
        documents, _ = store_state(data_dir)
        assert documents == FILES
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    failed = FILES - stored
    record_fault(
        "full disk during ingest (1 MiB tmpfs)",
        requests=FILES,
        failed=failed,
        lost=FILES - documents,
        recover_s=recovered,
        note=f"{stored}/{FILES} stored whole before the disk filled; the rest failed with "
        "an error and were added once space was freed",
    )
