"""`ragbridge collections list|delete` and `ragbridge search` as real processes, on a store that
`ragbridge ingest` filled."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import documents
from tests.support.cli import run_ragbridge
from tests.support.documents import FACTS
from tests.support.server import ragbridge_env

pytestmark = pytest.mark.slow


def ragbridge(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_ragbridge(*args, "--data-dir", data_dir, env=ragbridge_env(COLUMNS="200"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("collections-cli")
    files = root / "files"
    files.mkdir()
    (files / "quokka.txt").write_bytes(documents.english_text_bytes())
    (files / "hallasan.txt").write_bytes(documents.korean_text_bytes())
    data = root / "data"
    for collection in ("handbook", "scratch"):
        ingested = ragbridge("ingest", files, "--collection", collection, data_dir=data)
        assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    return data


def test_collections_list_shows_model_and_sizes(data_dir: Path) -> None:
    listed = ragbridge("collections", "list", data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "MODEL", "DIM", "DOCS", "CHUNKS"]
    handbook = next(line.split() for line in lines if line.startswith("handbook"))
    assert handbook[1:4] == ["universal-sentence-encoder-multilingual", "512", "2"]


def test_search_prints_ranked_passages_and_json(data_dir: Path) -> None:
    found = ragbridge("search", "Where do quokkas live?", "-c", "handbook", data_dir=data_dir)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("[1] ")
    assert "quokka.txt" in found.stdout.splitlines()[0]

    as_json = ragbridge(
        "search", "한라산 높이", "-c", "handbook", "--mode", "keyword", "--top-k", "1", "--json",
        data_dir=data_dir,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    [hit] = json.loads(as_json.stdout)
    assert hit["name"] == "hallasan.txt"
    assert FACTS["korean_text"].split()[0] in hit["text"]
    assert hit["rank"] == 1 and hit["score"] > 0


def test_search_of_a_missing_collection_fails_clearly(data_dir: Path) -> None:
    missing = ragbridge("search", "anything", "-c", "nope", data_dir=data_dir)
    assert missing.returncode == 1
    assert "nope" in missing.stderr and "not found" in missing.stderr


def test_collections_delete(data_dir: Path) -> None:
    deleted = ragbridge("collections", "delete", "scratch", "--yes", data_dir=data_dir)
    assert deleted.returncode == 0, deleted.stderr
    assert "Deleted collection 'scratch'" in deleted.stdout
    listed = ragbridge("collections", "list", data_dir=data_dir).stdout
    assert "scratch" not in listed and "handbook" in listed

    again = ragbridge("collections", "delete", "scratch", "--yes", data_dir=data_dir)
    assert again.returncode == 1
    assert "no collection named 'scratch'" in again.stderr
