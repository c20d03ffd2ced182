"""Hostile uploads against the real app under uvicorn (packaged local model, embedded store):
each is refused with a 413 or 422 naming the limit and its setting, quickly, never a 500, and
the server keeps answering. Upload names keep their path; one name uploaded ten times at once
is added once."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragbridge.app import create_app
from ragbridge.settings import Settings
from tests.support.documents import pdf_bytes
from tests.support.server import serve_in_thread

FIXTURES = Path(__file__).parent.parent / "fixtures"
MAX_RECORDS = 50
MAX_PAGES = 2


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hostile") / "data",
        sample_collection=False,
        database_url=None,
        ingest_max_records=MAX_RECORDS,
        ingest_max_pdf_pages=MAX_PAGES,
    )
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


def upload(api: httpx.Client, name: str, data: bytes, collection: str = "hostile") -> Any:
    return api.post(f"/v1/collections/{collection}/documents", files={"file": (name, data)})


def assert_refused(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for needle in needles:
        assert needle in error["message"], error


def test_jsonl_with_a_20_mb_line_is_refused_and_health_answers_meanwhile(
    api: httpx.Client,
) -> None:
    line = '{"본문": "' + "가" * (20 * 1024 * 1024 // 3) + '"}'
    data = ('{"title": "짧은 기록"}\n' + line + "\n").encode()
    result: dict[str, httpx.Response] = {}
    sender = threading.Thread(target=lambda: result.update(r=upload(api, "big.jsonl", data)))
    sender.start()
    health = []
    while sender.is_alive():
        health.append(api.get("/health").status_code)
        sender.join(timeout=0.05)
    assert health and set(health) == {200}
    assert_refused(result["r"], 413, "big.jsonl line 2", "RAGBRIDGE_INGEST_MAX_RECORD_BYTES")
    listed = api.get("/v1/collections/hostile/documents")  # a failed first upload makes none
    assert listed.status_code == 404 or listed.json()["data"] == []


def test_docx_inflating_to_1_gib_is_refused_before_inflating(api: httpx.Client) -> None:
    """A 1 MB DOCX whose document.xml inflates to 1 GiB (made once by deflating 1 GiB of
    spaces at level 9; too slow to build in the test)."""
    bomb = (FIXTURES / "bomb-1gib.docx").read_bytes()
    declared = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("word/document.xml").file_size
    assert len(bomb) < 2 * 1024 * 1024 and declared == 1024**3
    assert_refused(upload(api, "bomb.docx", bomb), 413, "bomb.docx", "RAGBRIDGE_INGEST_MAX_ZIP")


def test_json_nested_100000_deep_is_422_not_500(api: httpx.Client) -> None:
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    assert_refused(upload(api, "deep.json", deep), 422, "RAGBRIDGE_INGEST_MAX_JSON_DEPTH")
    nested = ('{"a": ' * 100 + "1" + "}" * 100).encode()  # parses, but past the limit
    assert_refused(upload(api, "nested.json", nested), 422, "RAGBRIDGE_INGEST_MAX_JSON_DEPTH")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("rows.jsonl", "".join(f'{{"제목": "기록 {i}"}}\n' for i in range(MAX_RECORDS + 1))),
        ("rows.csv", "제목,본문\n" + "".join(f"기록 {i},내용\n" for i in range(MAX_RECORDS + 1))),
        ("rows.json", "[" + ",".join(f'{{"n": {i}}}' for i in range(MAX_RECORDS + 1)) + "]"),
    ],
)
def test_too_many_records_is_422_naming_the_limit(api: httpx.Client, name: str, data: str) -> None:
    response = upload(api, name, data.encode())
    assert_refused(response, 422, name, f"RAGBRIDGE_INGEST_MAX_RECORDS={MAX_RECORDS}")


def test_csv_row_over_the_record_limit_is_413(api: httpx.Client) -> None:
    data = ('제목,본문\n짧은,행\n긴,"' + "나" * (2 * 1024 * 1024) + '"\n').encode()
    assert_refused(upload(api, "long.csv", data), 413, "RAGBRIDGE_INGEST_MAX_RECORD_BYTES")


def test_pdf_over_the_page_limit_is_422(api: httpx.Client) -> None:
    pdf = pdf_bytes(["one", "two", "three"])
    assert_refused(upload(api, "long.pdf", pdf), 422, "3 pages", "RAGBRIDGE_INGEST_MAX_PDF_PAGES")


def test_upload_names_keep_their_path_and_a_replacement_is_updated(api: httpx.Client) -> None:
    first = upload(api, "../../etc/x.txt", "첫 번째 파일입니다.".encode(), "names")
    second = upload(api, "..\\..\\x.txt", "두 번째 파일입니다.".encode(), "names")
    assert (first.status_code, first.json()["status"]) == (201, "added")
    assert (second.status_code, second.json()["status"]) == (201, "added")
    assert (first.json()["file"], second.json()["file"]) == ("etc/x.txt", "x.txt")
    listed = api.get("/v1/collections/names/documents").json()["data"]
    assert sorted(d["source"] for d in listed) == ["etc/x.txt", "x.txt"]

    again = upload(api, "x.txt", "세 번째 내용으로 바꿉니다.".encode(), "names")
    assert (again.status_code, again.json()["status"]) == (200, "updated")
    assert len(api.get("/v1/collections/names/documents").json()["data"]) == 2


def test_ten_concurrent_uploads_of_one_name_add_it_once(api: httpx.Client) -> None:
    data = "동시에 올린 같은 문서입니다.".encode()
    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda _: upload(api, "same.txt", data, "race"), range(10)))
    statuses = sorted(r.json()["status"] for r in replies)
    assert statuses == ["added"] + ["unchanged"] * 9
    assert sorted(r.status_code for r in replies) == [200] * 9 + [201]

    versions = [f"버전 {i}의 내용입니다.".encode() for i in range(5)]
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda d: upload(api, "same.txt", d, "race"), versions))
    assert [r.json()["status"] for r in replies] == ["updated"] * 5
    assert len(api.get("/v1/collections/race/documents").json()["data"]) == 1
