"""`ragbridge eval` on tiny BEIR folders written by the test (Korean and English), on an existing
collection, and on bad files (the error names the file and the line)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ragbridge.evaluation import mrr_at, ndcg_at, recall_at
from tests.support.cli import run_ragbridge
from tests.support.server import ragbridge_env

pytestmark = pytest.mark.slow

PASSAGES = {
    "leave": ("연차휴가", "입사 후 1년이 지난 직원에게는 연 15일의 유급 연차휴가가 주어집니다."),
    "sick": ("병가", "질병이나 부상으로 일을 할 수 없을 때는 연간 최대 10일의 유급 병가를 씁니다."),
    "remote": ("재택근무", "재택근무는 주 2회까지 허용되며 전날 팀장에게 신청해야 합니다."),
    "backup": ("Backups", "Server data is backed up every day at 3 a.m. and kept for 30 days."),
    "coffee": ("Coffee", "Pour-over coffee is brewed with water at around 90 degrees."),
    "sql": ("SQL joins", "LEFT JOIN keeps every row of the left table; INNER JOIN does not."),
}
QUERIES = {
    "q1": ("입사 1년 된 직원은 휴가를 며칠 받나요?", "leave"),
    "q2": ("아파서 쉬면 며칠까지 유급인가요?", "sick"),
    "q3": ("집에서 일하려면 언제 신청하나요?", "remote"),
    "q4": ("How long are backups kept?", "backup"),
    "q5": ("What water temperature for pour-over coffee?", "coffee"),
    "q6": ("What is the difference between LEFT JOIN and INNER JOIN?", "sql"),
}


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in PASSAGES.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False))
            f.write("\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, (text, _) in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, (_, d) in QUERIES.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def ragbridge(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_ragbridge(*args, env=ragbridge_env(data_dir))


def test_metrics_follow_the_beir_definitions() -> None:
    judged = {"a": 1, "b": 2}
    assert ndcg_at(["b", "a", "x"], judged) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], judged) == pytest.approx(
        (1 / 1.584962500721156) / (2 + 1 / 1.584962500721156)
    )
    assert mrr_at(["x", "y", "a"], judged) == pytest.approx(1 / 3)
    assert recall_at(["a", "x"], judged) == 0.5
    assert mrr_at(["x"] * 10 + ["a"], judged) == 0.0  # beyond 10


def test_eval_on_a_beir_folder_prints_a_table_and_json(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    result = ragbridge("eval", str(folder), "--json", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["queries"] == 6
    by_mode = {row["mode"]: row for row in report["results"]}
    assert set(by_mode) == {"keyword", "dense", "hybrid"}
    assert by_mode["hybrid"]["ndcg10"] >= 0.9
    assert by_mode["dense"]["recall100"] == 1.0
    assert all(row["p95_ms"] >= row["p50_ms"] > 0 for row in report["results"])

    table = ragbridge("eval", str(folder), "--mode", "keyword", data_dir=tmp_path / "data")
    assert table.returncode == 0, table.stderr
    assert "nDCG@10" in table.stdout and "keyword" in table.stdout


def test_eval_on_an_existing_collection(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for doc_id, (title, text) in PASSAGES.items():
        (docs / f"{doc_id}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    data = tmp_path / "data"
    ingest = ragbridge("ingest", str(docs), "--collection", "handbook", data_dir=data)
    assert ingest.returncode == 0, ingest.stderr
    beir = write_beir(tmp_path / "beir")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "".join(f"{q}\t{d}.md\t1\n" for q, (_, d) in QUERIES.items()), encoding="utf-8"
    )
    result = ragbridge(
        "eval", "--collection", "handbook", "--queries", str(beir / "queries.jsonl"),
        "--qrels", str(qrels), "--mode", "hybrid", "--json", data_dir=data,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["mode"] == "hybrid" and row["ndcg10"] >= 0.9


def test_bad_files_name_the_file_and_the_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"_id": "q7", "text": "깨진 줄\n')
    result = ragbridge("eval", str(folder), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"{folder / 'queries.jsonl'}:7: not valid JSON" in result.stderr

    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "휴가"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("q1\tleave\n", encoding="utf-8")
    result = ragbridge("eval", str(folder), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert f"{folder / 'qrels' / 'test.tsv'}:1: expected query-id, corpus-id and score" in (
        result.stderr
    )

    result = ragbridge("eval", str(tmp_path / "missing"), data_dir=tmp_path / "data")
    assert result.returncode == 1 and "not a folder" in result.stderr
