"""`ragbridge ingest PATH... --collection NAME` as a real process: folders, the summary with each
failure's reason, the exit code, and a second run that finds everything unchanged."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ragbridge.store.sqlite import SqliteStore
from tests.support import documents as generated
from tests.support.cli import ragbridge_command, run_ragbridge
from tests.support.server import ragbridge_env

pytestmark = pytest.mark.slow


def command(*args: str | Path, data_dir: Path) -> list[str]:
    return ragbridge_command(*args, "--data-dir", data_dir)


ENV = ragbridge_env(COLUMNS="200")


def ragbridge(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter, as a user would."""
    return run_ragbridge(*args, "--data-dir", data_dir, env=ENV)


def test_folder_ingest_reports_each_failure_and_is_idempotent(tmp_path: Path) -> None:
    generated.write_corpus(tmp_path / "docs")
    generated.write_bad_files(tmp_path / "docs" / "bad")
    data = tmp_path / "data"

    first = ragbridge("ingest", tmp_path / "docs", "--collection", "handbook", data_dir=data)

    assert first.returncode == 1, first.stderr
    summary = first.stdout
    assert "Collection handbook: 11 added, 0 updated, 0 unchanged, 3 failed" in summary
    assert "failed bad/broken.pdf: corrupt or unreadable PDF" in summary
    assert "failed bad/locked.pdf: the PDF is encrypted" in summary
    assert "failed bad/empty.txt: the file is empty" in summary
    assert "Skipped 1 file(s):" in summary  # bad/image.png in a folder, named with the reason
    assert re.search(r"skipped \S*bad/image\.png: \.png files are not a supported type", summary)
    assert (data / "ragbridge.db").is_file()

    second = ragbridge("ingest", tmp_path / "docs", "--collection", "handbook", data_dir=data)
    assert "0 added, 0 updated, 11 unchanged, 3 failed, 0 chunks embedded" in second.stdout


def test_good_files_exit_zero_and_a_change_is_an_update(tmp_path: Path) -> None:
    files = generated.write_corpus(tmp_path / "docs")
    data = tmp_path / "data"
    named = [files["zephyr.md"], files["catalogue.json"]]

    first = ragbridge("ingest", *named, "-c", "kb", data_dir=data)
    assert first.returncode == 0, first.stdout + first.stderr
    # six Markdown sections (one per heading) and three catalogue records
    assert "kb: 2 added, 0 updated, 0 unchanged, 0 failed, 9 chunks embedded" in first.stdout

    files["zephyr.md"].write_text("# Zephyr\n\nThe Zephyr sensor was discontinued in 2025.\n")
    second = ragbridge("ingest", *named, "-c", "kb", data_dir=data)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "kb: 0 added, 1 updated, 1 unchanged, 0 failed, 1 chunks embedded" in second.stdout


def test_a_named_unsupported_file_fails_with_its_type(tmp_path: Path) -> None:
    image = generated.write_files(tmp_path, {"photo.png": generated.png_bytes()})["photo.png"]
    result = ragbridge("ingest", image, tmp_path / "nowhere.txt", "-c", "kb", data_dir=tmp_path)
    assert result.returncode == 1
    assert "0 added, 0 updated, 0 unchanged, 2 failed" in result.stdout
    assert "failed photo.png: unsupported file type" in result.stdout
    assert "failed nowhere.txt: no such file" in result.stdout
    # Nothing was ingested: no empty collection is left to show up as a model.
    listed = ragbridge("collections", "list", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "kb" not in listed.stdout.split()


def test_parser_warnings_are_one_line_in_the_summary(tmp_path: Path) -> None:
    pdf = generated.pdf_with_parser_warnings_bytes()
    named = {"warn.pdf": pdf, "안내.txt": "안내문".encode()}
    files = generated.write_files(tmp_path / "docs", named)
    result = ragbridge("ingest", *files.values(), "-c", "kb", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "warning warn.pdf: 2 parser warnings, first: incorrect startxref pointer" in output
    assert output.count("startxref") == 1, output  # nothing raw from pypdf


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = ragbridge("ingest", tmp_path / "empty", "-c", "kb", data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "No files to ingest." in result.stdout


def committed_documents(db: Path) -> int:
    """Documents committed so far, read by another connection while the ingest runs."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


async def check_whole(db: Path) -> list[str]:
    """Every stored document has exactly its recorded number of chunks; returns the sources."""
    store = SqliteStore(db)
    await store.open()
    try:
        documents = await store.list_documents("kb")
        probe = np.full(512, 512**-0.5, dtype=np.float32)  # the default model's dimension
        for document in documents:
            hits = await store.dense_search("kb", probe, 1000, filters={"source": document.source})
            assert len(hits) == document.chunk_count > 0
        info = await store.get_collection("kb")
        assert info is not None
        assert info.chunk_count == sum(d.chunk_count for d in documents)
        return [d.source for d in documents]
    finally:
        await store.close()


def test_an_ingest_killed_midway_keeps_what_it_committed_and_resumes(tmp_path: Path) -> None:
    text = "\n\n".join(generated.english_paragraphs())
    files = {f"note-{n:02}.txt": f"Note {n}.\n\n{text}".encode() for n in range(40)}
    generated.write_files(tmp_path / "docs", files)
    data = tmp_path / "data"
    args = ("ingest", tmp_path / "docs", "-c", "kb")
    # Small embedding calls (8 texts): files are embedded together, and with the default 256 a
    # call can hold every file, so all would commit at once and nothing is left to kill.
    env = {
        **ENV,
        "RAGBRIDGE_CHUNK_SIZE": "40",
        "RAGBRIDGE_INGEST_WORKERS": "1",
        "RAGBRIDGE_EMBEDDING_BATCH_SIZE": "2",
    }

    process = subprocess.Popen(command(*args, data_dir=data), env=env)
    deadline = time.monotonic() + 180
    while committed_documents(data / "ragbridge.db") < 3 and process.poll() is None:
        assert time.monotonic() < deadline, "the ingest committed nothing"
        time.sleep(0.2)
    process.kill()
    process.wait()

    committed = asyncio.run(check_whole(data / "ragbridge.db"))
    assert 3 <= len(committed) < len(files), "killed mid-run, after the first commits"

    rerun = subprocess.run(
        command(*args, data_dir=data), env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = re.search(r"(\d+) added, 0 updated, (\d+) unchanged, 0 failed", rerun.stdout)
    assert counts is not None, rerun.stdout
    assert int(counts[2]) == len(committed)
    assert int(counts[1]) + int(counts[2]) == len(files)
    assert sorted(asyncio.run(check_whole(data / "ragbridge.db"))) == sorted(files)
