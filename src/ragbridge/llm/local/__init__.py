"""A GGUF model run in-process by llama.cpp (`llama-cpp-python`, the `local-llm` extra).

`LocalModel` serves one model as an upstream: the same `complete`/`open_stream` calls and chunk
shapes as the HTTP upstream client, so chat and RAG turns use it unchanged (see `llm.backend`).
"""

from ragbridge.llm.local.runtime import LocalModelUnavailable, local_model_problem

__all__ = ["LocalModelUnavailable", "local_model_problem"]
