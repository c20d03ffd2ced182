"""A huge chat message or search query costs a bounded retrieval: the query is cut to
RAGBRIDGE_RETRIEVAL_QUERY_MAX_CHARS (logged), its keyword terms capped, and the answer comes
(real app under uvicorn, packaged local model, no upstream: extractive answers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from ragbridge.app import create_app
from ragbridge.retrieval.query import bounded_query
from ragbridge.settings import Settings
from tests.support.server import serve_in_thread

FACT = "재택근무는 주 2회까지 가능하며 팀장의 사전 승인이 필요합니다."


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("bounded") / "data",
        sample_collection=False,
        database_url=None,
        upstream_base_url=None,
        max_request_bytes=16 * 1024 * 1024,
    )
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=600) as c:
        document = f"# 근무 규정\n\n{FACT}\n\n연차는 입사 1년 후 15일이 주어집니다.\n"
        uploaded = c.post(
            "/v1/collections/규정/documents", files={"file": ("규정.md", document.encode())}
        )
        assert uploaded.status_code == 201, uploaded.text
        yield c


def test_a_5_mb_korean_message_is_answered_with_a_cut_query(
    api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    pasted = "서울특별시는 대한민국의 수도이며 한강이 도시를 가로질러 흐른다. " * 60_000
    message = "재택근무 규정이 어떻게 되나요? " + pasted + " 재택근무는 며칠까지 가능한가요?"
    assert len(message.encode()) > 5 * 1024 * 1024
    body = {"model": "rag/규정", "messages": [{"role": "user", "content": message}]}
    with caplog.at_level(logging.INFO, logger="ragbridge.rag"):
        response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()["choices"][0]["message"]["content"]
    assert "재택근무는 주 2회까지" in answer
    cut = [r.getMessage() for r in caplog.records if "retrieval query cut" in r.getMessage()]
    assert cut and f"from {len(message)} to 2000 characters" in cut[0]


def test_a_500_kb_search_query_is_bounded_and_answers(api: httpx.Client) -> None:
    query = "재택근무 승인 " + "가나다라마바사 아자차카타파하 " * 35_000
    response = api.post("/v1/search", json={"collection": "규정", "query": query})
    assert response.status_code == 200, response.text
    assert any(FACT in hit["text"] for hit in response.json()["data"])


def test_bounded_query_keeps_the_beginning_and_the_end() -> None:
    text = "처음 질문 " + "가" * 10_000 + " 마지막 질문"
    cut = bounded_query(text, 100)
    assert len(cut) == 100
    assert cut.startswith("처음 질문") and cut.endswith("마지막 질문")
    assert bounded_query("짧은 질문", 100) == "짧은 질문"
