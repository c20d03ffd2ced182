"""Upstream model names as an Ollama upstream lists them: `llama3.2` is `llama3.2:latest`, the
Compose `ollama` profile works as shipped, the upstream's own 404 reaches the client, and the
default model is never one that cannot chat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from ragbridge.app import create_app
from ragbridge.llm.models import default_chat_model, is_chat_model, match_model
from ragbridge.settings import Settings
from tests.support.rag import COLLECTION, EN_QUESTION, KO_QUESTION, ingest_corpus
from tests.support.server import serve_in_thread
from tests.support.upstream import ScriptedUpstream, gateway_settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
# What `ollama list` shows after the pulls compose.yaml's comments ask for, plus an embedder.
OLLAMA_MODELS = ["nomic-embed-text:latest", "llama3.2:latest", "llama3.2:1b"]


def compose_default(variable: str) -> str:
    """The default compose.yaml gives `${variable:-default}`."""
    found = re.search(rf"\$\{{{variable}:-([^}}]*)\}}", COMPOSE.read_text(encoding="utf-8"))
    assert found, f"{variable} has no default in {COMPOSE}"
    return found.group(1)


@pytest.fixture(scope="module")
def ollama() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(models=OLLAMA_MODELS, check_models=True).serve() as server:
        yield server


def serve(ollama: ScriptedUpstream, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        sample_collection=False,
        **gateway_settings(ollama, **overrides),
    )


@pytest.fixture(scope="module")
def compose_url(
    ollama: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """ragbridge set up as compose.yaml's `ollama` profile sets it up, with a collection."""
    model = compose_default("RAGBRIDGE_UPSTREAM_MODEL")
    settings = serve(ollama, tmp_path_factory.mktemp("compose") / "data", upstream_model=model)
    with serve_in_thread(create_app(settings)) as url:
        ingest_corpus(url)
        yield url


@pytest.mark.parametrize("question", [EN_QUESTION, KO_QUESTION])
def test_compose_ollama_profile_answers_rag_chats(
    compose_url: str, ollama: ScriptedUpstream, question: str
) -> None:
    client = openai.OpenAI(base_url=f"{compose_url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model=f"rag/{COLLECTION}", messages=[{"role": "user", "content": question}]
    )
    assert completion.choices[0].message.content
    assert ollama.chat_requests[-1].body["model"] == "llama3.2:latest"
    # Open WebUI's task model (TASK_MODEL_EXTERNAL) is a plain model through ragbridge.
    task_model = compose_default("TASK_MODEL_EXTERNAL")
    stream = client.chat.completions.create(
        model=task_model, messages=[{"role": "user", "content": "제목"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert ollama.chat_requests[-1].body["model"] == task_model


def test_names_the_upstream_accepts_are_accepted(
    compose_url: str, ollama: ScriptedUpstream
) -> None:
    client = openai.OpenAI(base_url=f"{compose_url}/v1", api_key="unused", max_retries=0)
    for asked in ("llama3.2", "LLAMA3.2:latest", f"rag/{COLLECTION}/llama3.2"):
        completion = client.chat.completions.create(
            model=asked, messages=[{"role": "user", "content": "hello"}]
        )
        assert completion.choices[0].message.content, asked
        assert ollama.chat_requests[-1].body["model"] == "llama3.2:latest"

    before = len(ollama.chat_requests)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "x"}])
    error = raised.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "'mistral' does not exist upstream" in error["message"]
    assert "llama3.2:latest" in error["message"]  # what the upstream lists instead
    assert len(ollama.chat_requests) == before


def test_the_upstreams_own_404_is_passed_on(ollama: ScriptedUpstream, tmp_path: Path) -> None:
    """Without a model list ragbridge cannot check names: the upstream's 404 message is passed."""
    ollama.models_status = 500
    try:
        with serve_in_thread(create_app(serve(ollama, tmp_path / "data"))) as url:
            body = {"model": "mistral", "messages": [{"role": "user", "content": "x"}]}
            for stream in (False, True):
                response = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": stream})
                assert response.status_code == 404, response.text
                message = response.json()["error"]["message"]
                assert 'model "mistral" not found, try pulling it first' in message
    finally:
        ollama.models_status = 200


def test_default_model_is_the_first_that_can_chat(ollama: ScriptedUpstream, tmp_path: Path) -> None:
    with serve_in_thread(create_app(serve(ollama, tmp_path / "data"))) as url:
        ingest_corpus(url)
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": f"rag/{COLLECTION}", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    assert ollama.chat_requests[-1].body["model"] == "llama3.2:latest"  # not nomic-embed-text


def test_matching_rules() -> None:
    listed = ["meta-llama/Llama-3.1-8B-Instruct", "qwen2.5:latest", "Qwen2.5:7b", "gpt-4o"]
    assert match_model("gpt-4o", listed) == "gpt-4o"
    assert match_model("GPT-4o", listed) == "gpt-4o"
    assert match_model("qwen2.5", listed) == "qwen2.5:latest"
    assert match_model("llama-3.1-8b-instruct", listed) == "meta-llama/Llama-3.1-8B-Instruct"
    assert match_model("other/gpt-4o", listed) == "gpt-4o"
    assert match_model("gpt-4", listed) is None
    assert match_model("x", ["org-a/x", "org-b/x"]) is None  # ambiguous: the upstream decides


def test_non_chat_models_are_never_the_default() -> None:
    openai_list = [
        "dall-e-3", "text-embedding-3-small", "whisper-1", "tts-1-hd", "gpt-4o-mini-tts",
        "omni-moderation-latest", "gpt-image-1", "gpt-4o-audio-preview", "gpt-4o-transcribe",
        "gpt-4o-realtime-preview", "babbage-002", "bge-m3:latest", "multilingual-e5-large",
        "gpt-4o-mini",
    ]  # fmt: skip
    assert default_chat_model(openai_list) == "gpt-4o-mini"
    assert [m for m in openai_list if is_chat_model(m)] == ["gpt-4o-mini"]
    assert default_chat_model(["text-embedding-3-small"]) is None
    for chat in ("llama3.2:latest", "qwen2.5:7b", "gpt-4.1", "EXAONE-3.5-7.8B", "o3-mini"):
        assert is_chat_model(chat), chat
