"""The parts of the local LLM that need no model: request checks, task shapes, routing and the
context window RAG trims to. They run without llama-cpp-python."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from ragbridge.errors import InvalidRequest
from ragbridge.llm.local.generate import Job, LocalReply
from ragbridge.llm.local.model import LocalModel, model_id
from ragbridge.llm.local.options import Generation, parse_generation
from ragbridge.llm.router import ModelRouter
from ragbridge.llm.tasks import task_reply, task_shape
from ragbridge.rag import RagAnswerer
from ragbridge.settings import Settings
from tests.support.rag import KO_QUESTION, task_prompt

MESSAGES = [{"role": "user", "content": "안녕하세요"}]


def test_openai_fields_become_llama_sampling_arguments() -> None:
    generation = parse_generation(
        {
            "messages": [
                {"role": "developer", "content": "짧게"},
                {"role": "user", "content": [{"type": "text", "text": "한라산"}]},
            ],
            "max_completion_tokens": 7,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 2**40 + 3,
            "stop": "끝",
            "logit_bias": {"106": -100},
            "stream_options": {"include_usage": True},
        }
    )
    sampling = generation.sampling()

    assert generation.messages == [
        {"role": "system", "content": "짧게"},
        {"role": "user", "content": "한라산"},
    ]
    assert generation.include_usage
    assert sampling["max_tokens"] == 7 and sampling["temperature"] == 0.0
    assert sampling["top_p"] == 0.5 and sampling["top_k"] == 0 and sampling["min_p"] == 0.0
    assert sampling["seed"] == 3 and sampling["stop"] == ["끝"]
    assert sampling["logit_bias"] == {106: -100.0}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 3}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logit_bias": {"x": 1}}, "logit_bias"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
    ],
)
def test_what_one_local_model_cannot_do_is_a_400_naming_the_field(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_generation({"messages": MESSAGES, **extra})
    assert raised.value.param == param and raised.value.status == 400


def test_task_answers_keep_the_shape_open_webui_parses() -> None:
    title, tags = (
        task_shape(task_prompt("title", KO_QUESTION)),
        task_shape(task_prompt("tags", KO_QUESTION)),
    )
    assert title is not None and tags is not None
    assert title.schema()["properties"] == {"title": {"type": "string"}}
    assert tags.schema()["properties"]["tags"]["type"] == "array"

    good = json.dumps({"title": "한라산 높이"}, ensure_ascii=False)
    assert task_reply(task_prompt("title", KO_QUESTION), title, f" {good} ") == good
    cut_off = '{"title": "한라산의 높이는 몇'
    assert json.loads(task_reply(task_prompt("title", KO_QUESTION), title, cut_off)) == {
        "title": "한라산의 높이는 몇 미터인가요"
    }
    assert json.loads(task_reply(task_prompt("tags", KO_QUESTION), tags, '{"tags": "x"}')) == {
        "tags": []
    }


def local_settings(tmp_path: Path, **extra: Any) -> Settings:
    model = tmp_path / "Tiny-Model.Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    return Settings(data_dir=tmp_path / "data", local_model=model, **extra)


def test_the_model_is_named_after_its_file(tmp_path: Path) -> None:
    assert model_id(Path("/m/qwen2.5-1.5b-instruct-q4_k_m.gguf")) == "qwen2.5-1.5b-instruct-q4_k_m"
    assert LocalModel(local_settings(tmp_path)).id == "Tiny-Model.Q4_K_M"
    assert Settings(local_model="").local_model is None  # Compose's empty variable


@pytest.mark.anyio
async def test_router_sends_the_local_id_to_the_local_model_and_nothing_else(
    tmp_path: Path,
) -> None:
    local = LocalModel(local_settings(tmp_path, local_context_tokens=1024))
    router = ModelRouter(local, remote=None)

    assert [m["id"] for m in await router.list_models()] == [local.id]
    assert await router.resolve_model(local.id) == local.id
    assert router.context_window(local.id) == 1024 and router.context_window("gpt-x") is None
    with pytest.raises(Exception, match="does not exist") as raised:
        router.open_stream({"model": "gpt-x", "messages": MESSAGES}, {})
    assert getattr(raised.value, "status", None) == 404


@pytest.mark.anyio
async def test_pieces_posted_while_the_loop_was_busy_come_in_one_wake_up_and_one_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    job = Job(Generation(messages=MESSAGES), loop)
    scheduled: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        if getattr(callback, "__self__", None) is job:
            scheduled.append(callback)
        return real(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    pieces = ["한라산", "은 ", "제주도", "에 ", "있다", "."]

    def worker() -> None:
        for piece in pieces:
            job.post("text", piece)
        job.post("end", "length")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()  # the loop is blocked meanwhile, as a busy loop would be
    chunks = [chunk async for chunk in LocalReply("tiny", job).chunks()]

    assert len(scheduled) == 1  # one wake-up for seven posts
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "".join(pieces)}, {}]
    assert deltas[1]["content"] == "한라산은 제주도에 있다."
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.anyio
async def test_a_piece_posted_while_the_reader_waits_wakes_it() -> None:
    job = Job(Generation(messages=MESSAGES), asyncio.get_running_loop())
    job.post("text", "첫")
    assert await job.take() == [("text", "첫")]

    waiting = asyncio.ensure_future(job.take())
    await asyncio.sleep(0)  # the reader now waits on an empty deque
    threading.Thread(target=job.post, args=("text", "둘")).start()
    assert await asyncio.wait_for(waiting, 5) == [("text", "둘")]


def test_rag_trims_passages_to_the_local_context_window(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, upstream_context_tokens=8192)
    windows = {"tiny": 1024}
    rag = RagAnswerer(settings, None, None, None, context_window=windows.get)  # type: ignore[arg-type]
    body = {"messages": MESSAGES, "max_tokens": 100}

    assert rag.passage_budget(body, "tiny") == rag.passage_budget(body, "remote") - (8192 - 1024)
    assert rag.passage_budget(body) == rag.passage_budget(body, "remote")
