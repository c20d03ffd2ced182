"""RAG chat turns through the official `openai` SDK (and raw SSE): ragbridge under uvicorn, a real
store with English and Korean documents, the scripted upstream LLM on loopback.

Each question must retrieve the right passage, put it into the upstream's prompt as [1], and
send it back first as an Open WebUI source event (or in `sources`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import openai
import pytest

from ragbridge.prompts import NO_CONTEXT_TEMPLATES
from ragbridge.settings import Settings
from tests.support.metrics import Scrape
from tests.support.rag import (
    COLLECTION,
    EN_FOLLOW_UP,
    EN_QUESTION,
    KO_FOLLOW_UP,
    KO_QUESTION,
    PASSAGES,
    UNRELATED_KO_QUESTION,
    corpus_server,
    first_content_index,
    source_events,
    sse_payloads,
    streamed_text,
    task_prompt,
)
from tests.support.upstream import Reply, ScriptedUpstream, gateway_settings

pytestmark = pytest.mark.slow

MODEL = f"rag/{COLLECTION}"
ANSWER = "".join(Reply().tokens)


@pytest.fixture(scope="module")
def base_url(llm: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ragbridge (response cache on) with the corpus ingested, for the whole module."""
    data_dir = tmp_path_factory.mktemp("rag") / "data"
    with corpus_server(
        data_dir, upstream_model="stub-alpha", response_cache=True, **gateway_settings(llm)
    ) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def _system_prompt(llm: ScriptedUpstream) -> str:
    messages = llm.chat_requests[-1].body["messages"]
    assert messages[0]["role"] == "system"
    return str(messages[0]["content"])


@pytest.mark.parametrize(
    ("question", "expected", "marker"),
    [(EN_QUESTION, "valve.txt", "Passages:"), (KO_QUESTION, "hallasan.txt", "발췌:")],
)
def test_streamed_answer_cites_the_right_passage_first(
    base_url: str, llm: ScriptedUpstream, question: str, expected: str, marker: str
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 300,
        "user": "user-7",
    }
    payloads = list(sse_payloads(base_url, body))

    sources = source_events(payloads)
    assert sources and sources[0]["source"]["name"] == expected
    assert sources[0]["document"] == [PASSAGES[expected]]
    assert sources[0]["metadata"][0]["name"] == expected
    assert all("type" not in source for source in sources)  # or Open WebUI does not save it
    assert len(payloads) - 1 - first_content_index(payloads) > 0
    assert all(i < first_content_index(payloads) for i, p in enumerate(payloads) if "event" in p)
    assert payloads[-1] == "[DONE]"
    chunks = [p for p in payloads if isinstance(p, dict) and "event" not in p]
    assert {c["model"] for c in chunks} == {MODEL}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == ANSWER

    sent = llm.chat_requests[-1].body
    assert sent["model"] == "stub-alpha"
    assert (sent["max_tokens"], sent["user"], sent["stream"]) == (300, "user-7", True)
    assert sent["messages"][1:] == body["messages"]  # the conversation itself is untouched
    prompt = _system_prompt(llm)
    assert marker in prompt
    assert f"[1] ({expected})\n{PASSAGES[expected]}" in prompt
    for number, source in enumerate(sources, start=1):  # [n] in the prompt is the nth chip
        assert f"[{number}] ({source['source']['name']})" in prompt
    assert f"[{len(sources) + 1}] (" not in prompt


@pytest.mark.parametrize(
    ("history", "expected"), [(EN_FOLLOW_UP, "lighthouse.txt"), (KO_FOLLOW_UP, "palace.txt")]
)
def test_follow_up_that_refers_back_retrieves_the_earlier_topic(
    client: openai.OpenAI, llm: ScriptedUpstream, history: list[dict[str, str]], expected: str
) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=history,  # type: ignore[arg-type]
        stream=True,
    )
    chunks = list(stream)

    events = [c.model_extra["event"] for c in chunks if c.model_extra and "event" in c.model_extra]
    assert events[0]["type"] == "source"
    assert events[0]["data"]["source"]["name"] == expected
    assert all(c.choices == [] for c in chunks if c.model_extra and "event" in c.model_extra)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert llm.chat_requests[-1].body["messages"][1:] == history
    assert f"[1] ({expected})" in _system_prompt(llm)


def test_non_streamed_answer_carries_sources(client: openai.OpenAI, llm: ScriptedUpstream) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": KO_QUESTION}]
    )

    assert completion.model == MODEL
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sources: list[dict[str, Any]] = (completion.model_extra or {})["sources"]
    assert sources[0]["source"]["name"] == "hallasan.txt"
    assert sources[0]["document"] == [PASSAGES["hallasan.txt"]]
    assert 0 < sources[0]["distances"][0] <= 1
    assert llm.chat_requests[-1].body["model"] == "stub-alpha"
    assert "stream" not in llm.chat_requests[-1].body


def test_model_after_the_collection_picks_the_upstream_model(
    client: openai.OpenAI, llm: ScriptedUpstream
) -> None:
    completion = client.chat.completions.create(
        model=f"{MODEL}/stub-beta", messages=[{"role": "user", "content": EN_QUESTION}]
    )

    assert completion.model == f"{MODEL}/stub-beta"
    assert llm.chat_requests[-1].body["model"] == "stub-beta"
    assert "[1] (valve.txt)" in _system_prompt(llm)

    with pytest.raises(openai.NotFoundError, match="does not exist upstream"):
        client.chat.completions.create(
            model=f"{MODEL}/no-such-model", messages=[{"role": "user", "content": EN_QUESTION}]
        )


def test_the_model_list_offers_a_rag_model_per_collection(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}

    assert {"stub-alpha", "stub-beta", "gpt-test", MODEL} <= set(models)
    assert models[MODEL].owned_by == "ragbridge"
    assert models["stub-alpha"].owned_by == "scripted"


@pytest.mark.parametrize("stream", [False, True])
def test_task_requests_skip_retrieval(
    base_url: str, client: openai.OpenAI, llm: ScriptedUpstream, stream: bool
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": task_prompt("title", EN_QUESTION)}],
        "max_tokens": 1000,
    }
    if stream:
        payloads = list(sse_payloads(base_url, body))
        assert source_events(payloads) == []
        assert first_content_index(payloads) >= 0
    else:
        response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
        assert "sources" not in response.json()
        assert response.json()["model"] == MODEL

    sent = llm.chat_requests[-1].body
    assert sent["messages"] == body["messages"]  # no passages, no RAG instructions
    assert sent["model"] == "stub-alpha"
    assert sent["max_tokens"] == 1000


@pytest.mark.xfail(
    reason="issue 9: with the multilingual default embedder, dense search always returns its "
    "best passages, and cross-script fusion scores them by dense alone; an off-topic Korean "
    "question over English documents gets passages. Needs an absolute dense floor, calibrated.",
    strict=False,
)
def test_nothing_relevant_found_says_so(
    base_url: str, client: openai.OpenAI, llm: ScriptedUpstream
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": UNRELATED_KO_QUESTION}]}
    payloads = list(sse_payloads(base_url, body))

    assert source_events(payloads) == []
    assert _system_prompt(llm) == NO_CONTEXT_TEMPLATES["ko"]
    completion = client.chat.completions.create(**body)  # type: ignore[call-overload]
    assert (completion.model_extra or {})["sources"] == []


def test_unknown_collection_is_a_404_in_the_envelope(
    base_url: str, client: openai.OpenAI, llm: ScriptedUpstream
) -> None:
    before = len(llm.chat_requests)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(
            model="rag/no-such-collection", messages=[{"role": "user", "content": EN_QUESTION}]
        )
    assert raised.value.body["code"] == "model_not_found"  # type: ignore[index]

    body = {"model": "rag/no-such-collection/stub-alpha", "stream": True, "messages": []}
    body["messages"] = [{"role": "user", "content": EN_QUESTION}]
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model"
    assert len(llm.chat_requests) == before


def test_passages_are_trimmed_to_the_context_window_never_the_conversation(
    client: openai.OpenAI, llm: ScriptedUpstream
) -> None:
    question = "Aurora valve inspection, Borealis pump mounting, Meridian lighthouse, quokkas?"
    roomy = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=100
    )
    tight = client.chat.completions.create(  # 8192 context: ~150 tokens left for passages
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=7800
    )

    roomy_sources = (roomy.model_extra or {})["sources"]
    tight_sources = (tight.model_extra or {})["sources"]
    assert len(roomy_sources) == 5
    assert 1 <= len(tight_sources) < len(roomy_sources)
    assert tight_sources == roomy_sources[: len(tight_sources)]  # best first, in order
    sent = llm.chat_requests[-1].body
    assert sent["messages"][1:] == [{"role": "user", "content": question}]
    assert f"[{len(tight_sources)}] (" in sent["messages"][0]["content"]
    assert f"[{len(tight_sources) + 1}] (" not in sent["messages"][0]["content"]

    full = client.chat.completions.create(  # no room at all: the best passage goes anyway
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=8100
    )
    assert (full.model_extra or {})["sources"] == roomy_sources[:1]


@pytest.mark.parametrize("stream", [False, True])
def test_identical_temperature_zero_requests_reach_the_upstream_once(
    base_url: str, client: openai.OpenAI, llm: ScriptedUpstream, stream: bool
) -> None:
    question = f"Where do quokkas live? ({'streamed' if stream else 'plain'})"
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0}
    before = len(llm.chat_requests)
    lookups_before = Scrape(base_url).value("ragbridge_cache_lookups_total", cache="response")

    if stream:
        first, second = (list(sse_payloads(base_url, body)) for _ in range(2))
        assert source_events(first) == source_events(second) != []
        assert source_events(second)[0]["source"]["name"] == "quokka.txt"
        texts = [streamed_text(payloads) for payloads in (first, second)]
        assert texts == [ANSWER, ANSWER]
        assert second[-1] == "[DONE]"
    else:
        answers = [client.chat.completions.create(**body) for _ in range(2)]  # type: ignore[call-overload]
        assert [a.choices[0].message.content for a in answers] == [ANSWER, ANSWER]
        first_sources, second_sources = ((a.model_extra or {})["sources"] for a in answers)
        assert first_sources == second_sources != []

    assert len(llm.chat_requests) == before + 1
    scrape = Scrape(base_url)
    assert scrape.value("ragbridge_cache_lookups_total", cache="response", result="hit") >= 1
    assert scrape.value("ragbridge_cache_lookups_total", cache="response") == lookups_before + 2

    warm = {**body, "temperature": 0.7}
    client.chat.completions.create(**warm)  # type: ignore[call-overload]
    client.chat.completions.create(**warm)  # type: ignore[call-overload]
    assert len(llm.chat_requests) == before + 3


def test_cached_retrievals_follow_ingest_and_delete(base_url: str, llm: ScriptedUpstream) -> None:
    collection = "cache-check"
    model = f"rag/{collection}"
    question = "What colour is the Zephyr calibration badge?"
    with httpx.Client(base_url=base_url, timeout=120) as http:
        for name in ("valve.txt", "pump.txt"):
            files = {"file": (name, PASSAGES[name].encode(), "text/plain")}
            assert http.post(f"/v1/collections/{collection}/documents", files=files).is_success

        def first_source() -> str:
            body = {"model": model, "messages": [{"role": "user", "content": question}]}
            answer = http.post("/v1/chat/completions", json=body).json()
            return str(answer["sources"][0]["source"]["name"])

        before = Scrape(base_url)
        assert first_source() != "zephyr.txt"
        assert first_source() != "zephyr.txt"
        after = Scrape(base_url)
        hits = "ragbridge_cache_lookups_total"
        assert (
            after.value(hits, cache="retrieval", result="hit")
            == before.value(hits, cache="retrieval", result="hit") + 1
        )

        badge = b"The Zephyr calibration badge is bright orange and sits on the left side."
        uploaded = http.post(
            f"/v1/collections/{collection}/documents",
            files={"file": ("zephyr.txt", badge, "text/plain")},
        )
        assert uploaded.status_code == 201
        assert first_source() == "zephyr.txt"

        document = uploaded.json()["documents"][0]["id"]
        assert http.delete(f"/v1/collections/{collection}/documents/{document}").is_success
        assert first_source() != "zephyr.txt"


def test_without_a_default_model_the_upstreams_first_model_answers(
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    upstream.models = ["first-listed", "stub-alpha"]
    with serve_app(make_settings(**gateway_settings(upstream))) as url:
        files = {"file": ("valve.txt", PASSAGES["valve.txt"].encode(), "text/plain")}
        uploaded = httpx.post(f"{url}/v1/collections/one/documents", files=files, timeout=120)
        assert uploaded.status_code == 201
        body = {"model": "rag/one", "messages": [{"role": "user", "content": EN_QUESTION}]}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).json()

    assert answer["model"] == "rag/one"
    assert upstream.chat_requests[-1].body["model"] == "first-listed"
    assert answer["sources"][0]["source"]["name"] == "valve.txt"
