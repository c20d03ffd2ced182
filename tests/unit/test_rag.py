"""RAG model ids and the passage budget: what a `rag/...` id means, and how much context fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragbridge.rag import (
    DEFAULT_REPLY_TOKENS,
    INSTRUCTION_TOKENS,
    RagAnswerer,
    RagModel,
    parse_rag_model,
)
from ragbridge.settings import Settings
from ragbridge.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("rag/handbook", RagModel("rag/handbook", "handbook", None)),
        ("rag/handbook/llama3.1", RagModel("rag/handbook/llama3.1", "handbook", "llama3.1")),
        (
            "rag/사내규정/meta-llama/Llama-3.1-8B",  # upstream ids may hold slashes
            RagModel("rag/사내규정/meta-llama/Llama-3.1-8B", "사내규정", "meta-llama/Llama-3.1-8B"),
        ),
        ("rag/handbook/", RagModel("rag/handbook/", "handbook", None)),
        ("rag/", RagModel("rag/", "", None)),
    ],
)
def test_rag_model_ids_name_a_collection_and_maybe_an_upstream_model(
    model: str, expected: RagModel
) -> None:
    assert parse_rag_model(model) == expected


@pytest.mark.parametrize("model", ["gpt-4o", "llama3.1", "ragged/x", "RAG/handbook", ""])
def test_other_ids_are_not_rag_models(model: str) -> None:
    assert parse_rag_model(model) is None


def _answerer(tmp_path: Path, **settings: object) -> RagAnswerer:
    config = Settings(data_dir=tmp_path, database_url=None, **settings)  # type: ignore[arg-type]
    store = SqliteStore(tmp_path / "unused.db")  # never opened: the budget needs no store
    return RagAnswerer(config, store, retriever=None, upstream=None)  # type: ignore[arg-type]


def test_budget_is_the_window_less_conversation_reply_and_instructions(tmp_path: Path) -> None:
    answerer = _answerer(tmp_path, upstream_context_tokens=4000)
    question = "x" * 400  # 100 tokens at ~4 bytes per token
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 300}

    assert answerer.passage_budget(body) == 4000 - 100 - 300 - INSTRUCTION_TOKENS
    body_new_name = {**body, "max_tokens": None, "max_completion_tokens": 500}
    assert answerer.passage_budget(body_new_name) == 4000 - 100 - 500 - INSTRUCTION_TOKENS


def test_without_max_tokens_the_reply_gets_a_default_share(tmp_path: Path) -> None:
    body = {"messages": [{"role": "user", "content": "한" * 40}]}  # 120 bytes: 30 tokens

    big = _answerer(tmp_path, upstream_context_tokens=32000)
    assert big.passage_budget(body) == 32000 - 30 - DEFAULT_REPLY_TOKENS - INSTRUCTION_TOKENS
    small = _answerer(tmp_path, upstream_context_tokens=2048)
    assert small.passage_budget(body) == 2048 - 30 - 512 - INSTRUCTION_TOKENS


def test_tools_and_history_count_against_the_budget(tmp_path: Path) -> None:
    answerer = _answerer(tmp_path, upstream_context_tokens=8192)
    one_turn = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}
    tools = [{"type": "function", "function": {"name": "lookup", "description": "d" * 4000}}]
    history = [{"role": "assistant", "content": "y" * 2000}] * 3

    base = answerer.passage_budget(one_turn)
    assert answerer.passage_budget({**one_turn, "tools": tools}) <= base - 1000
    with_history = {**one_turn, "messages": [*history, *one_turn["messages"]]}  # type: ignore[list-item]
    assert base - 1502 <= answerer.passage_budget(with_history) <= base - 1500  # + newlines
