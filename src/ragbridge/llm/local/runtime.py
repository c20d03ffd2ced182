"""The thin layer over `llama_cpp` (optional, imported only once a local model is configured):
the import check as one clear sentence, loading a model, its chat template."""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'ragbridge[local-llm]' (builds llama.cpp; for a portable CPU build set "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; '
    "see docs/local-llm.md)"
)

# Used when a GGUF file carries no chat template (some base models, like the Gemma 3 270M
# build the tests use): the family's own turn markers, system messages joined into the first turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages if m['role'] == 'system' %}"
    "{% set ns.system = ns.system ~ (m['content'] | trim) ~ '\\n\\n' %}{% endfor %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ (ns.system if loop.first else '') ~ (m['content'] | trim) }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LocalModelUnavailable(RuntimeError):
    """The local model cannot run: the extra is missing, or the file does not load."""


def local_model_problem(path: Path) -> str | None:
    """Why a local model at `path` cannot run here (one line): no `llama_cpp`, no GGUF file."""
    try:
        importlib.import_module("llama_cpp")
    except ImportError as exc:
        return (
            f"RAGBRIDGE_LOCAL_MODEL needs llama-cpp-python, which is not installed "
            f"({exc.msg}). Install it with: {INSTALL_HINT}"
        )
    if not path.is_file():
        return f"RAGBRIDGE_LOCAL_MODEL: no such file: {path}"
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            return f"RAGBRIDGE_LOCAL_MODEL: {path} is not a GGUF file"
    return None


@dataclass(frozen=True)
class LlamaOptions:
    """How to load the model (the `RAGBRIDGE_LOCAL_*` settings)."""

    path: Path
    context_tokens: int
    threads: int | None
    gpu_layers: int
    batch_tokens: int


@dataclass(frozen=True)
class Loaded:
    """A loaded model with what generation needs: its chat formatter and end-of-turn tokens."""

    llama: Any
    formatter: Any
    context_tokens: int
    template_source: str


def load(options: LlamaOptions) -> Loaded:
    """Load the GGUF file (blocking: seconds for small models, run it off the event loop)."""
    if (problem := local_model_problem(options.path)) is not None:
        raise LocalModelUnavailable(problem)
    import llama_cpp
    from llama_cpp import llama_chat_format

    try:
        llama = llama_cpp.Llama(
            model_path=str(options.path),
            n_ctx=options.context_tokens,
            n_threads=options.threads,  # None: llama.cpp's default (half the cores)
            n_threads_batch=options.threads,
            n_batch=options.batch_tokens,
            n_gpu_layers=options.gpu_layers,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise LocalModelUnavailable(f"Cannot load {options.path}: {exc}") from None
    template, end_of_turn, source = _template(llama.metadata, options.path.name)
    stop_ids = [llama.token_eos()]
    if end_of_turn:
        stop_ids += llama.tokenize(end_of_turn.encode(), add_bos=False, special=True)[:1]
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(llama, llama.token_eos()),
        bos_token=_token_text(llama, llama.token_bos()),
        stop_token_ids=stop_ids,
    )
    return Loaded(llama, formatter, int(llama.n_ctx()), source)


def _template(metadata: dict[str, str], name: str) -> tuple[str, str, str]:
    """The chat template (the GGUF's own, else a fallback), its end-of-turn text and origin."""
    if template := metadata.get("tokenizer.chat_template"):
        return template, "", "gguf"
    if metadata.get("general.architecture", "").startswith("gemma"):
        log.warning("%s has no chat template; using the gemma turn format", name)
        return GEMMA_TEMPLATE, "<end_of_turn>", "fallback (gemma)"
    log.warning("%s has no chat template; using ChatML turn markers", name)
    return CHATML_TEMPLATE, "<|im_end|>", "fallback (chatml)"


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llama.detokenize([token], special=True)).decode("utf-8", "replace")


def json_grammar(schema: dict[str, Any]) -> Any:
    """A llama.cpp grammar that only lets the model write JSON matching `schema`."""
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
