"""Without an upstream LLM, RAG models answer extractively: the right passages quoted, cited and
labelled, in the question's language, streamed or not; Open WebUI's task requests get JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from ragbridge.llm.extractive import HEADERS, NOTHING_FOUND
from tests.support.rag import (
    COLLECTION,
    EN_QUESTION,
    KO_FOLLOW_UP,
    KO_QUESTION,
    UNRELATED_KO_QUESTION,
    corpus_server,
    first_content_index,
    source_events,
    sse_payloads,
    streamed_text,
    task_prompt,
)

pytestmark = pytest.mark.slow

MODEL = f"rag/{COLLECTION}"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ragbridge with no upstream and the corpus ingested, for the whole module."""
    with corpus_server(tmp_path_factory.mktemp("extractive") / "data") as url:
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def test_english_question_is_answered_with_the_quoted_passage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": EN_QUESTION}]
    )

    answer = completion.choices[0].message.content or ""
    assert completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    assert answer.startswith(HEADERS["en"])
    first_quote = answer.split("\n> ", 1)[1].split("\n", 1)[0]
    assert "The Aurora valve must be inspected every 90 days" in first_quote
    assert first_quote.endswith("[1]")
    sources = (completion.model_extra or {})["sources"]
    assert sources[0]["source"]["name"] == "valve.txt"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 10
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_korean_question_is_streamed_in_korean_with_sources_first(base_url: str) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": KO_QUESTION}],
        "stream_options": {"include_usage": True},
    }
    payloads = list(sse_payloads(base_url, body))

    sources = source_events(payloads)
    assert sources[0]["source"]["name"] == "hallasan.txt"
    start = first_content_index(payloads)
    assert all(i < start for i, p in enumerate(payloads) if isinstance(p, dict) and "event" in p)
    chunks = [p for p in payloads if isinstance(p, dict) and p.get("choices")]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) > 10  # streamed like any answer, not one lump
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.startswith(HEADERS["ko"])
    assert "높이는 1,947미터로" in text and "[1]" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage = [p["usage"] for p in payloads if isinstance(p, dict) and p.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] > 0
    assert payloads[-1] == "[DONE]"


def test_sdk_streams_an_extractive_follow_up(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=KO_FOLLOW_UP,  # type: ignore[arg-type]
        stream=True,
    )
    chunks = list(stream)

    events = [c.model_extra["event"] for c in chunks if c.model_extra and "event" in c.model_extra]
    assert events[0]["data"]["source"]["name"] == "palace.txt"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(HEADERS["ko"])
    assert "1395년" in text
    assert {c.model for c in chunks} == {MODEL}


@pytest.mark.parametrize("stream", [False, True])
def test_task_requests_get_the_json_open_webui_parses(base_url: str, stream: bool) -> None:
    answers = {}
    for kind in ("title", "tags"):
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": task_prompt(kind, KO_QUESTION)}],
        }
        if stream:
            payloads = list(sse_payloads(base_url, body))
            assert source_events(payloads) == []
            answers[kind] = streamed_text(payloads)
        else:
            response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=30)
            assert response.status_code == 200, response.text
            assert "sources" not in response.json()
            answers[kind] = response.json()["choices"][0]["message"]["content"]

    assert json.loads(answers["title"]) == {"title": "한라산의 높이는 몇 미터인가요"}
    assert json.loads(answers["tags"]) == {"tags": []}


def test_nothing_found_says_so_in_the_question_language(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": UNRELATED_KO_QUESTION}]
    )

    assert completion.choices[0].message.content == NOTHING_FOUND["ko"]
    assert (completion.model_extra or {})["sources"] == []


def test_models_list_only_rag_models_and_others_keep_their_error(client: openai.OpenAI) -> None:
    assert [(m.id, m.owned_by) for m in client.models.list()] == [(MODEL, "ragbridge")]

    with pytest.raises(openai.NotFoundError, match="no upstream LLM is configured"):
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": EN_QUESTION}]
        )
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(
            model="rag/unknown", messages=[{"role": "user", "content": EN_QUESTION}]
        )


WRAPPED = {
    "connect.md": "# Connecting Open WebUI\n\nTo connect Open WebUI to ragbridge, open Admin "
    "Settings,\nthen Connections, and add the ragbridge URL with its API key.\nModels appear "
    "after a refresh.\n",
    "연결.md": "# 오픈 웹UI 연결\n\n오픈 웹UI를 래그브리지에 연결하려면 관리자 설정을 열고\n연결 "
    "메뉴에서 래그브리지 주소와 API 키를 추가합니다.\n새로 고치면 모델이 보입니다.\n",
}


@pytest.fixture(scope="module")
def wrapped_url(base_url: str) -> str:
    """The module's server with a `wrapped` collection of documents whose lines wrap."""
    with httpx.Client(base_url=base_url, timeout=120) as http:
        for name, text in WRAPPED.items():
            files = {"file": (name, text.encode(), "text/markdown")}
            response = http.post("/v1/collections/wrapped/documents", files=files)
            assert response.status_code in (200, 201), response.text
    return base_url


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        (
            "How do I connect Open WebUI to ragbridge?",
            "To connect Open WebUI to ragbridge, open Admin Settings, then Connections, and add "
            "the ragbridge URL with its API key.",
        ),
        (
            "오픈 웹UI를 래그브리지에 어떻게 연결하나요?",
            "오픈 웹UI를 래그브리지에 연결하려면 관리자 설정을 열고 연결 메뉴에서 래그브리지 "
            "주소와 API 키를 추가합니다.",
        ),
    ],
)
def test_quotes_are_whole_sentences_across_wrapped_lines(
    wrapped_url: str, question: str, sentence: str
) -> None:
    client = openai.OpenAI(base_url=f"{wrapped_url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="rag/wrapped", messages=[{"role": "user", "content": question}]
    )
    answer = completion.choices[0].message.content or ""
    quotes = [line for line in answer.splitlines() if line.startswith("> ") and "[" in line]
    assert any(sentence in quote for quote in quotes), answer
    for quote in quotes:  # every quote ends a sentence before its citation
        text = quote[2:].rsplit(" [", 1)[0]
        assert text.endswith((".", "다", "Connecting Open WebUI", "오픈 웹UI 연결")), quote


@pytest.mark.parametrize(
    ("question", "language"),
    [("What is the capital of France?", "en"), ("프랑스의 수도는 어디인가요?", "ko")],
)
def test_off_topic_questions_say_nothing_was_found(
    client: openai.OpenAI, base_url: str, question: str, language: str
) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    assert completion.choices[0].message.content == NOTHING_FOUND[language]  # type: ignore[index]
    assert (completion.model_extra or {})["sources"] == []
    payloads = list(sse_payloads(base_url, {"model": MODEL, "messages": [
        {"role": "user", "content": question}]}))  # fmt: skip
    assert source_events(payloads) == []
