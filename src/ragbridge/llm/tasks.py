"""Open WebUI's own `### Task:` requests (title, tags, follow-ups, queries): spotted, and answered
with the bare JSON object the prompt asks for, without a model (`task_answer`) or by a local
model held to its shape (`TaskShape.schema`) and checked (`task_reply`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragbridge.retrieval.query import message_text

TASK_PREFIX = "### Task:"
MAX_LIST_ITEMS = 5

_JSON_FORMAT = re.compile(r'JSON format:\s*\{\s*"(\w+)"\s*:\s*(\[|")')
_FIRST_USER_LINE = re.compile(r"<chat_history>\s*USER:\s*(.+)")
_FIRST_SENTENCE_END = re.compile(r"(?<=[.!?。])\s")


def is_task_request(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether Open WebUI made this request for itself: exactly one user message, starting
    `### Task:`, and no earlier turns (a system prompt may precede it). It needs no retrieval."""
    users = [m for m in messages if m.get("role") == "user"]
    others = [m for m in messages if m.get("role") not in ("user", "system", "developer")]
    return (
        len(users) == 1 and not others and message_text(users[0]).lstrip().startswith(TASK_PREFIX)
    )


def task_prompt(body: Mapping[str, Any]) -> str | None:
    """The `### Task:` prompt when `body` is an Open WebUI task request, else None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not is_task_request(messages):
        return None
    return "\n".join(message_text(m) for m in messages if m.get("role") == "user")


@dataclass(frozen=True)
class TaskShape:
    """The object a task prompt asks for: one key holding a string or a list of strings."""

    key: str
    is_list: bool

    def schema(self) -> dict[str, Any]:
        """The JSON schema a model's output is held to."""
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


def task_answer(prompt: str) -> str:
    """The object a task prompt asks for, without a model: a title from the first words of the
    first user message, empty lists (tags, follow-ups, queries); `{}` when it names none."""
    shape = task_shape(prompt)
    if shape is None:
        return "{}"
    if shape.is_list:
        return json.dumps({shape.key: []})
    value = ""
    if shape.key == "title" and (first := _FIRST_USER_LINE.search(prompt)):
        words = _FIRST_SENTENCE_END.split(first.group(1).strip(), maxsplit=1)[0].split()
        value = " ".join(words[:6]).rstrip(".,!?;:。")
    return json.dumps({shape.key: value}, ensure_ascii=False)


def task_reply(prompt: str, shape: TaskShape | None, generated: str) -> str:
    """A model's answer when it is the asked-for object, else the model-free answer."""
    text = generated.strip()
    if shape is None or shape.accepts(text):
        return text
    return task_answer(prompt)
