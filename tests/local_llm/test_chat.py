"""The local model through `ragbridge serve`: the openai SDK, streaming, sampling options,
usage, RAG citations (Korean too), Open WebUI tasks and clean errors."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.local_llm.conftest import CONTEXT_TOKENS, TASK_TOKENS, LocalServer
from tests.support.rag import (
    COLLECTION,
    EN_QUESTION,
    KO_QUESTION,
    first_content_index,
    source_events,
    sse_payloads,
    streamed_text,
    task_prompt,
)

pytestmark = pytest.mark.slow
GREETING: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one short sentence about the sea."}
]


@pytest.fixture
def client(local_server: LocalServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=local_server.url + "/v1", api_key="unused", max_retries=0)


def test_the_model_is_listed_under_its_file_name(
    client: openai.OpenAI, local_server: LocalServer
) -> None:
    models = {model.id: model for model in client.models.list()}

    assert models[local_server.model].owned_by == "ragbridge-local"
    assert f"rag/{COLLECTION}" in models


def test_streams_token_by_token_through_the_openai_sdk(
    client: openai.OpenAI, local_server: LocalServer
) -> None:
    arrivals: list[float] = []
    pieces: list[str] = []
    finish = usage = None
    stream = client.chat.completions.create(
        model=local_server.model,
        messages=GREETING,
        stream=True,
        max_tokens=12,
        temperature=0,
        logit_bias=local_server.end_tokens,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                arrivals.append(time.perf_counter())
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish

    assert chunk.model == local_server.model
    assert finish == "length"
    assert usage is not None and usage.completion_tokens == 12 and usage.prompt_tokens > 5
    assert len(pieces) >= 8, pieces  # about one chunk per token, not one buffered blob
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert sum(gap > 0.001 for gap in gaps) >= len(gaps) // 2, gaps  # they came as made


def test_max_tokens_seed_and_usage_without_streaming(
    client: openai.OpenAI, local_server: LocalServer
) -> None:
    def ask() -> ChatCompletion:
        return client.chat.completions.create(
            model=local_server.model,
            messages=GREETING,
            max_tokens=6,
            temperature=1.0,
            top_p=0.9,
            seed=1234,
            logit_bias=local_server.end_tokens,
        )

    first, second = ask(), ask()

    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None and first.usage.completion_tokens == 6
    assert first.usage.total_tokens == first.usage.prompt_tokens + 6
    assert first.choices[0].message.content == second.choices[0].message.content  # same seed


def test_stop_sequences_end_the_answer_before_them(
    client: openai.OpenAI, local_server: LocalServer
) -> None:
    def ask(stop: list[str] | None = None) -> ChatCompletion:
        return client.chat.completions.create(
            model=local_server.model,
            messages=GREETING,
            max_tokens=16,
            temperature=0,
            logit_bias=local_server.end_tokens,
            stop=stop,
        )

    full = ask().choices[0].message.content or ""
    words = full.split()
    assert len(words) >= 4, full
    stop = words[2]
    cut = ask(stop=[stop]).choices[0]

    assert cut.finish_reason == "stop"
    assert cut.message.content == full[: full.index(stop)]


def test_korean_question_on_a_rag_model_cites_the_korean_passage(
    local_server: LocalServer,
) -> None:
    body = {
        "model": f"rag/{COLLECTION}",
        "messages": [{"role": "user", "content": KO_QUESTION}],
        "max_tokens": 24,
        "temperature": 0,
    }
    payloads = list(sse_payloads(local_server.url, body))

    sources = source_events(payloads)
    assert sources and sources[0]["source"]["name"] == "hallasan.txt"
    assert "한라산" in sources[0]["document"][0]
    start = first_content_index(payloads)
    events = [i for i, p in enumerate(payloads) if isinstance(p, dict) and "event" in p]
    assert events and max(events) < start  # the sources come before the first token
    chunks = [p for p in payloads if isinstance(p, dict) and p.get("choices")]
    assert {p["model"] for p in chunks} == {f"rag/{COLLECTION}"}
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in chunks).strip()
    assert payloads[-1] == "[DONE]"


def test_rag_model_naming_the_local_model_answers_with_sources(
    client: openai.OpenAI, local_server: LocalServer
) -> None:
    completion = client.chat.completions.create(
        model=f"rag/{COLLECTION}/{local_server.model}",
        messages=[{"role": "user", "content": EN_QUESTION}],
        max_tokens=16,
        temperature=0,
    )
    sources = completion.model_extra["sources"] if completion.model_extra else []

    assert completion.model == f"rag/{COLLECTION}/{local_server.model}"
    assert sources and sources[0]["source"]["name"] == "valve.txt"
    assert completion.usage is not None and completion.usage.prompt_tokens > 50  # passages in


@pytest.mark.parametrize(("rag", "stream"), [(False, False), (True, True)])
def test_open_webui_tasks_get_the_json_they_ask_for(
    local_server: LocalServer, rag: bool, stream: bool
) -> None:
    model = f"rag/{COLLECTION}" if rag else local_server.model
    for kind, shape in (("title", str), ("tags", list)):
        prompt = task_prompt(kind, KO_QUESTION)
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        if stream:
            payloads = list(sse_payloads(local_server.url, body))
            assert source_events(payloads) == []
            text = streamed_text(payloads)
        else:
            response = httpx.post(f"{local_server.url}/v1/chat/completions", json=body, timeout=60)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert "sources" not in answer
            assert answer["usage"]["completion_tokens"] <= TASK_TOKENS
            text = answer["choices"][0]["message"]["content"]
        value = json.loads(text)
        assert list(value) == [kind] and isinstance(value[kind], shape), text


def test_a_conversation_over_the_context_window_is_a_clean_400(
    local_server: LocalServer,
) -> None:
    long = "바다 " * (CONTEXT_TOKENS * 2)
    body = {"model": local_server.model, "messages": [{"role": "user", "content": long}]}
    for stream in (False, True):
        response = httpx.post(
            f"{local_server.url}/v1/chat/completions", json={**body, "stream": stream}, timeout=60
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded"
        assert str(CONTEXT_TOKENS) in error["message"]


def test_unsupported_fields_are_named_in_a_400(local_server: LocalServer) -> None:
    for extra, param in (({"n": 2}, "n"), ({"temperature": 3}, "temperature")):
        body = {"model": local_server.model, "messages": GREETING, **extra}
        response = httpx.post(f"{local_server.url}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
