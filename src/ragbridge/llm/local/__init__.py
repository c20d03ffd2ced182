"""A GGUF model run in-process by llama.cpp (`llama-cpp-python`, the `local-llm` extra), served
like the HTTP upstream (see `llm.backend`)."""

from ragbridge.llm.local.runtime import LocalModelUnavailable, local_model_problem

__all__ = ["LocalModelUnavailable", "local_model_problem"]
