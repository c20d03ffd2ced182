"""Open WebUI's `### Task:` requests (title, tags, follow-ups, queries) on the local model.

The model answers them itself, kept short (`RAGBRIDGE_LOCAL_TASK_MAX_TOKENS`) and held to the
JSON object the prompt asks for by a grammar built from that shape, so Open WebUI can parse it.
An answer that still is not that object (cut off by the token limit) is replaced by the answer
ragbridge gives without a model (`extractive.task_answer`): the same shape, never an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ragbridge.llm.extractive import task_answer

_JSON_FORMAT = re.compile(r'JSON format:\s*\{\s*"(\w+)"\s*:\s*(\[|")')
MAX_LIST_ITEMS = 5


@dataclass(frozen=True)
class TaskShape:
    """The object a task prompt asks for: one key holding a string or a list of strings."""

    key: str
    is_list: bool

    def schema(self) -> dict[str, Any]:
        """The JSON schema the model's output is held to."""
        value: dict[str, Any] = {"type": "string"}
        if self.is_list:
            value = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_LIST_ITEMS}
        return {
            "type": "object",
            "properties": {self.key: value},
            "required": [self.key],
            "additionalProperties": False,
        }

    def accepts(self, text: str) -> bool:
        """Whether `text` is exactly the asked-for object."""
        try:
            value = json.loads(text)
        except ValueError:
            return False
        if not isinstance(value, dict) or set(value) != {self.key}:
            return False
        inner = value[self.key]
        if self.is_list:
            return isinstance(inner, list) and all(isinstance(item, str) for item in inner)
        return isinstance(inner, str)


def task_shape(prompt: str) -> TaskShape | None:
    """The object a `### Task:` prompt asks for, if it names one (`JSON format: {...}`)."""
    match = _JSON_FORMAT.search(prompt)
    return TaskShape(match.group(1), match.group(2) == "[") if match else None


def task_reply(prompt: str, shape: TaskShape | None, generated: str) -> str:
    """The model's answer when it is the asked-for object, else the model-free answer."""
    text = generated.strip()
    if shape is None or shape.accepts(text):
        return text
    return task_answer(prompt)


def grammar_for(shape: TaskShape) -> Any:
    """A llama.cpp grammar that only lets the model write `shape`'s object."""
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(json.dumps(shape.schema()), verbose=False)
