"""A small English and Korean corpus for RAG chat tests: one distinct fact per file, questions
that ask for each, follow-ups that refer back, and Open WebUI-style task prompts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragbridge.app import create_app
from ragbridge.settings import Settings
from tests.support.documents import FACTS
from tests.support.server import serve_in_thread

COLLECTION = "docs"

PASSAGES = {
    "valve.txt": "The Aurora valve must be inspected every 90 days by a certified technician. "
    "Inspection reports are filed in the maintenance log.",
    "lighthouse.txt": "The Meridian lighthouse was automated in 1987 and still guides ships into "
    "Porthaven harbour. Its lamp can be seen twenty-two nautical miles out at sea.",
    "quokka.txt": FACTS["english_text"] + " They are herbivores and mostly active at night.",
    "pump.txt": "Mount the Borealis pump at least 40 centimetres above the floor so that flood "
    "water cannot reach the motor.",
    "hallasan.txt": FACTS["korean_text"] + " 정상에는 백록담이라는 화구호가 있습니다.",
    "palace.txt": FACTS["cp949_text"] + " 임진왜란 때 불에 탔다가 1867년에 다시 지어졌습니다.",
    "filter.txt": "보레알리스 펌프는 매년 3월에 필터를 교체해야 합니다. "
    "교체 작업은 공인 기술자가 맡습니다.",
    "coffee.txt": "핸드드립 커피는 끓은 직후의 92도 정도 물을 여러 번에 나누어 천천히 부어야 "
    "맛이 좋습니다.",
}

EN_QUESTION = "How often does the Aurora valve need an inspection?"
KO_QUESTION = "한라산의 높이는 몇 미터인가요?"
UNRELATED_KO_QUESTION = "양자 컴퓨터의 큐비트 오류 정정 방식은 무엇인가요?"

EN_FOLLOW_UP = [
    {"role": "user", "content": "When was the Meridian lighthouse automated?"},
    {"role": "assistant", "content": "It was automated in 1987 [1]."},
    {"role": "user", "content": "Explain that in more detail"},
]
KO_FOLLOW_UP = [
    {"role": "user", "content": "경복궁은 언제 창건되었나요?"},
    {"role": "assistant", "content": "1395년에 창건되었습니다 [1]."},
    {"role": "user", "content": "그것에 대해 더 자세히 알려줘"},
]


def task_prompt(kind: str, question: str) -> str:
    """An Open WebUI background task prompt (`title` or `tags`), as Open WebUI 0.12 words it."""
    output = (
        '{ "title": "your concise title here" }'
        if kind == "title"
        else ('{ "tags": ["tag1", "tag2", "tag3"] }')
    )
    return (
        f"### Task:\nGenerate a concise {kind} for the chat history.\n### Output:\n"
        f"JSON format: {output}\n### Chat History:\n<chat_history>\nUSER: {question}\n"
        "ASSISTANT: Every 90 days [1].\n</chat_history>"
    )


def ingest_corpus(base_url: str, collection: str = COLLECTION) -> None:
    """Upload every passage as its own file through the collections API."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for name, text in PASSAGES.items():
            files = {"file": (name, text.encode(), "text/plain")}
            response = client.post(f"/v1/collections/{collection}/documents", files=files)
            assert response.status_code in (200, 201), response.text


@contextmanager
def corpus_server(data_dir: Path, **settings: Any) -> Iterator[str]:
    """ragbridge on loopback with the corpus ingested, for a module: only `settings` count (no
    RAGBRIDGE_* variable, no `.env`); yields the base URL."""
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("RAGBRIDGE_")]:
            env.delenv(name)
        config = Settings(
            _env_file=None,
            data_dir=data_dir,
            sample_collection=False,
            **settings,
        )
        with serve_in_thread(create_app(config)) as url:
            ingest_corpus(url)
            yield url


def sse_payloads(base_url: str, body: dict[str, Any]) -> Iterator[dict[str, Any] | str]:
    """The `data` payloads of a streamed chat answer, raw off the wire (JSON parsed)."""
    with (
        httpx.Client(base_url=base_url, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                yield data if data == "[DONE]" else json.loads(data)


def source_events(payloads: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The Open WebUI source events' `data` among stream payloads, in order."""
    return [
        p["event"]["data"]
        for p in payloads
        if isinstance(p, dict) and p.get("event", {}).get("type") == "source"
    ]


def first_content_index(payloads: list[dict[str, Any] | str]) -> int:
    """Position of the first payload that carries answer text."""
    for index, payload in enumerate(payloads):
        if isinstance(payload, dict) and any(
            (choice.get("delta") or {}).get("content") for choice in payload.get("choices") or ()
        ):
            return index
    raise AssertionError("no content in the stream")


def streamed_text(payloads: list[dict[str, Any] | str]) -> str:
    """The content deltas of a stream's payloads, joined."""
    return "".join(
        p["choices"][0]["delta"].get("content") or ""
        for p in payloads
        if isinstance(p, dict) and p.get("choices")
    )
